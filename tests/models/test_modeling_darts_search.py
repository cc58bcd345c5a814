"""The convolutional supernet: sizes as the original's, alphas, mixed operations, the derived network."""

import pytest
import torch
from helpers import assert_same_gradients_and_buffers, backward_nodes, kernelized, tiny_supernet
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
def test_kernelized_mixed_op_trains_as_the_plain_weighted_sum(stride):
    """Training mode: the kernelized edge's shared ReLU and in-place sums give the plain sum's output, gradients (input, operation
    weights, the softmax weights) and BatchNorm running statistics."""
    torch.manual_seed(0)
    reference = MixedOp(list(PRIMITIVES), channels=4, stride=stride).double()
    op = kernelized(reference)
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


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels-last"])
def test_a_kernelized_search_step_equals_the_plain_supernet(channels_last):
    """Kernelized, the supernet shares one ReLU per state for all the edges reading it, sums in place and, in the
    scripts' CPU layout (channels-last), runs the BatchNorm (keeping its output), pooling and depthwise kernels: the
    same loss, gradients of every weight and alpha, and BatchNorm statistics as the plain supernet."""
    torch.manual_seed(0)
    reference = tiny_supernet(init_channels=6, num_nodes=3, multiplier=3).double().train()
    with torch.no_grad():
        for alpha in reference.arch_parameters():
            alpha.normal_()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    reference = reference.to(memory_format=memory_format)
    model = kernelized(reference)
    pixels = torch.randn(4, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=memory_format)
    labels = torch.tensor([0, 1, 2, 1])
    loss, expected = model(pixels, labels=labels).loss, reference(pixels, labels=labels).loss
    kernels = {
        "BatchNormalizationBackward",
        "MaxPoolingBackward",
        "AvgPoolingBackward",
        "DepthwiseConvolutionBackward",
    }
    assert kernels.isdisjoint(backward_nodes(expected))
    assert (kernels <= backward_nodes(loss)) == channels_last
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    loss.backward(), expected.backward()
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
