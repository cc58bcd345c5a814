"""The convolutional supernet: sizes as the original's, alphas, mixed operations, the derived network."""

import copy

import pytest
import torch
from helpers import assert_same_gradients_and_buffers, tiny_supernet
from transformers import AutoModelForImageClassification

from darts_hub import DartsConfig, DartsForImageClassification, count_mult_adds, count_parameters
from darts_hub.models.genotypes import PRIMITIVES
from darts_hub.models.modeling_darts_search import DartsSearchConfig, DartsSearchModel, MixedOp
from darts_hub.search.derived import derived_config


def test_supernet_counts_match_the_original_search_network():
    model = DartsSearchModel(DartsSearchConfig())
    assert count_parameters(model) == 1_930_618
    assert sum(p.numel() for p in model.arch_parameters()) == 224 == 2 * 14 * 8
    assert count_mult_adds(model) == 300_255_744
    weights = {id(p) for p in model.weight_parameters()}
    assert not weights & {id(p) for p in model.arch_parameters()}
    assert len(weights) + 2 == len(list(model.parameters()))


def test_alphas_start_small_and_are_saved_with_the_model(tmp_path):
    torch.manual_seed(0)
    model = DartsSearchModel(DartsSearchConfig())
    assert 0.7e-3 < model.alphas_normal.std().item() < 1.3e-3
    assert not torch.equal(model.alphas_normal, model.alphas_reduce)
    with torch.no_grad():
        model.alphas_normal.normal_()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert isinstance(loaded, DartsSearchModel)
    assert torch.equal(loaded.alphas_normal, model.alphas_normal)
    assert loaded.genotype() == model.genotype()


def test_search_cells_use_affine_free_batchnorm_and_pooling_is_normalised():
    model = tiny_supernet()
    for name, module in model.cells.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert not module.affine, name
    edge = model.cells[0].edges[0]
    assert "none" not in edge.ops
    assert isinstance(edge.ops["max_pool_3x3"][1], torch.nn.BatchNorm2d)


def test_mixed_op_is_the_weighted_sum_and_none_costs_nothing():
    torch.manual_seed(0)
    op = MixedOp(list(PRIMITIVES), channels=4, stride=1).eval()
    x = torch.randn(2, 4, 6, 6)
    weights = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    expected = sum(weights[PRIMITIVES.index(name)] * module(x) for name, module in op.ops.items())
    torch.testing.assert_close(op(x, weights), expected)
    only_none = torch.zeros(len(PRIMITIVES))
    only_none[PRIMITIVES.index("none")] = 1.0
    assert torch.count_nonzero(op(x, only_none)) == 0


@pytest.mark.parametrize("stride", [1, 2])
def test_mixed_op_trains_as_the_plain_weighted_sum(stride):
    """Training mode: the shared ReLU and the in-place sums give the plain sum's output, gradients (input, operation
    weights, the softmax weights) and BatchNorm running statistics."""
    torch.manual_seed(0)
    op = MixedOp(list(PRIMITIVES), channels=4, stride=stride).double()
    reference = copy.deepcopy(op)
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.softmax(torch.randn(len(PRIMITIVES), dtype=torch.float64), 0).requires_grad_()
    output = op(x, weights)
    expected = sum(weights[PRIMITIVES.index(name)] * module(x) for name, module in reference.ops.items())
    torch.testing.assert_close(output, expected)
    output_grad = torch.randn_like(output)
    ours = torch.autograd.grad(output, [x, weights, *op.parameters()], output_grad)
    theirs = torch.autograd.grad(expected, [x, weights, *reference.parameters()], output_grad)
    for mine, reference_grad in zip(ours, theirs):
        torch.testing.assert_close(mine, reference_grad)
    for (name, buffer), (_, reference_buffer) in zip(op.named_buffers(), reference.named_buffers()):
        torch.testing.assert_close(buffer, reference_buffer, msg=name)


def with_pytorchs_layers(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` whose layers with CPU kernels (BatchNorm, pooling, depthwise convolutions) are PyTorch's own
    classes again (each of ours is a subclass with the same state), and a depthwise convolution that rectifies its
    input is PyTorch's ReLU and convolution."""
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if type(module).__module__.startswith("darts_hub"):
            base = next(cls for cls in type(module).__mro__ if cls.__module__.startswith("torch.nn"))
            if base not in (torch.nn.Module, torch.nn.Sequential):
                module.__class__ = base
        if getattr(module, "rectifies_input", False):
            parent_name, _, child = name.rpartition(".")
            plain.get_submodule(parent_name).register_module(child, torch.nn.Sequential(torch.nn.ReLU(), module))
    return plain


def backward_nodes(output: torch.Tensor) -> set[str]:
    """The names of the autograd nodes behind `output`."""
    names, pending, seen = set(), [output.grad_fn], set()
    while pending:
        node = pending.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(node.name())
            pending += [following for following, _ in node.next_functions]
    return names


def test_a_channels_last_search_step_equals_pytorchs_layers():
    """The supernet in the scripts' CPU layout runs the BatchNorm (keeping its output), pooling and depthwise kernels:
    the same loss, gradients of every weight and alpha, and BatchNorm statistics as with PyTorch's layers."""
    torch.manual_seed(0)
    model = tiny_supernet(init_channels=6, num_nodes=3, multiplier=3).double().train()
    model = model.to(memory_format=torch.channels_last)
    reference = with_pytorchs_layers(model)
    pixels = torch.randn(4, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 1, 2, 1])
    loss, expected = model(pixels, labels=labels).loss, reference(pixels, labels=labels).loss
    kernels = {
        "BatchNormalizationBackward",
        "MaxPoolingBackward",
        "AvgPoolingBackward",
        "DepthwiseConvolutionBackward",
    }
    assert kernels <= backward_nodes(loss) and kernels.isdisjoint(backward_nodes(expected))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    loss.backward(), expected.backward()
    assert_same_gradients_and_buffers(model, reference)


def plain_supernet_logits(model: DartsSearchModel, pixels: torch.Tensor) -> torch.Tensor:
    """The supernet written plainly: every operation of every edge applies its own ReLU; sums out of place."""
    weights = {cell: torch.softmax(model.alphas[cell], dim=-1) for cell in ("normal", "reduce")}
    s0 = s1 = model.stem(pixels)
    for cell in model.cells:
        cell_weights = weights["reduce" if cell.reduction else "normal"]
        states, edge = [cell.preprocess0(s0), cell.preprocess1(s1)], 0
        for _ in range(cell.num_nodes):
            node = 0
            for h in states:
                mixed = cell.edges[edge]
                node = node + sum(cell_weights[edge, c] * op(h) for c, op in zip(mixed.op_columns, mixed.ops.values()))
                edge += 1
            states.append(node)
        s0, s1 = s1, torch.cat(states[-cell.multiplier :], dim=1)
    return model.classifier(model.pooler(s1).flatten(1))


def test_search_step_equals_the_plain_supernet():
    """The shared ReLUs (one per state for all the edges reading it) and the in-place sums: the same logits,
    gradients of every weight and alpha, and BatchNorm statistics as the plain supernet."""
    torch.manual_seed(0)
    model = tiny_supernet(init_channels=6, num_nodes=3, multiplier=3).double().train()
    with torch.no_grad():
        for alpha in model.arch_parameters():
            alpha.normal_()
    reference = copy.deepcopy(model)
    pixels = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    logits, expected = model(pixels).logits, plain_supernet_logits(reference, pixels)
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)
    logits.square().sum().backward()
    expected.square().sum().backward()
    assert_same_gradients_and_buffers(model, reference)


def test_derived_config_builds_the_network_found():
    model = tiny_supernet()
    config = derived_config(model, init_channels=8, num_cells=3)
    assert isinstance(config, DartsConfig)
    assert config.get_genotype() == model.genotype()
    assert (config.num_channels, config.image_size, config.num_labels) == (3, 8, 3)
    assert not config.use_auxiliary_head  # the auxiliary head needs 32x32 images
    network = DartsForImageClassification(config)
    assert network(torch.randn(2, 3, 8, 8)).logits.shape == (2, 3)
    paper = derived_config(DartsSearchModel(DartsSearchConfig()))
    assert (paper.init_channels, paper.num_cells, paper.use_auxiliary_head) == (36, 20, True)


def test_image_size_too_small_for_the_reductions_fails_early():
    with pytest.raises(ValueError, match=r"3x3 pixels are too small for 8 cells.*at least 4x4"):
        DartsSearchConfig(image_size=3)


@pytest.mark.parametrize("num_cells", [1, 2, 5, 8])
def test_supernet_and_derived_network_share_the_backbone(num_cells):
    # Same stem, same reduction positions and, cell by cell, the same input and output sizes: the supernet differs
    # from the network it derives only inside its cells.
    supernet = DartsSearchModel(DartsSearchConfig(init_channels=4, num_cells=num_cells, image_size=8))
    network = DartsForImageClassification(
        derived_config(supernet, init_channels=4, num_cells=num_cells, use_auxiliary_head=False)
    ).darts
    assert {k: v.shape for k, v in supernet.stem.state_dict().items()} == {
        k: v.shape for k, v in network.stem.state_dict().items()
    }
    assert len(supernet.cells) == len(network.cells) == num_cells
    for search_cell, cell in zip(supernet.cells, network.cells):
        assert search_cell.reduction == cell.reduction
        assert type(search_cell.preprocess0) is type(cell.preprocess0)
        for name in ("preprocess0", "preprocess1"):
            search_shapes = [p.shape for p in getattr(search_cell, name).parameters()]
            shapes = [p.shape for p in getattr(cell, name).parameters() if p.dim() > 1]  # affine-free in search
            assert search_shapes == shapes
        assert search_cell.out_channels == cell.out_channels
    assert supernet.classifier.in_features == network.num_features
    pixels = torch.randn(2, 3, 8, 8)
    assert network(pixels).last_hidden_state.shape[1:] == (
        network.num_features,
        *([8 // 2 ** len(network.config.reduction_cells)] * 2),
    )
