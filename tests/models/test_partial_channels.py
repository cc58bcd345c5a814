"""PC-DARTS (`partial_channels`, `edge_normalization`): K = 1 without edge normalisation is DARTS; the bypass and the
channel shuffle put every channel where PC-DARTS puts it; the betas weigh each node's edges, train with the alphas
and choose the derived cell's inputs."""

import json

import pytest
import torch
from helpers import flat, tiny_search_args, tiny_supernet
from transformers import AutoModelForImageClassification

from darts_hub.models.genotypes import PRIMITIVES
from darts_hub.models.modeling_darts_search import DartsSearchConfig, MixedOp, channel_shuffle, node_softmax
from darts_hub.models.ops import FactorizedReduce
from darts_hub.search.architect import Architect
from darts_hub.training.search_images import run_search


def batch(seed=0, size=8):
    generator = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.randn(size, 3, 8, 8, generator=generator),
        "labels": torch.randint(0, 3, (size,), generator=generator),
    }


def one_hot(name):
    weights = torch.zeros(len(PRIMITIVES))
    weights[PRIMITIVES.index(name)] = 1.0
    return weights


def test_one_partial_channel_without_edge_normalization_is_darts():
    torch.manual_seed(0)
    darts = tiny_supernet()
    torch.manual_seed(0)
    partial = tiny_supernet(partial_channels=1, edge_normalization=False)
    assert partial.betas is None and len(partial.arch_parameters()) == 2
    assert darts.state_dict().keys() == partial.state_dict().keys()
    for name, tensor in darts.state_dict().items():
        assert torch.equal(tensor, partial.state_dict()[name]), name
    for model in (darts, partial):
        model(**batch()).loss.backward()
        Architect(model, torch.optim.Adam(model.arch_parameters(), lr=3e-3)).step(batch(1), batch(2), None)
    torch.testing.assert_close(
        flat([p.grad for p in partial.weight_parameters()]),
        flat([p.grad for p in darts.weight_parameters()]),
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(flat(partial.arch_parameters()), flat(darts.arch_parameters()), rtol=0, atol=0)


def test_partial_channels_bypass_the_operations_and_are_shuffled():
    """PC-DARTS's layout, K = 4 over 8 channels: the operations see channels 0-1, channels 2-7 bypass them, and the
    shuffle interleaves the four groups of two (channel j of group g goes to position j * 4 + g)."""
    torch.manual_seed(0)
    op = MixedOp(list(PRIMITIVES), channels=8, stride=1, partial_channels=4).eval()
    x = torch.randn(2, 8, 6, 6)
    out = op(x, one_hot("none"))  # the operations add nothing: only the bypass is left
    assert torch.count_nonzero(out[:, [0, 4]]) == 0
    torch.testing.assert_close(out[:, [1, 2, 3, 5, 6, 7]], x[:, [2, 4, 6, 3, 5, 7]], rtol=0, atol=0)

    weights = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    operations = sum(weights[PRIMITIVES.index(name)] * module(x[:, :2]) for name, module in op.ops.items())
    torch.testing.assert_close(op(x, weights)[:, [0, 4]], operations)
    assert all(module.weight.shape[0] == 2 for module in op.modules() if isinstance(module, torch.nn.Conv2d))

    reduction = MixedOp(list(PRIMITIVES), channels=8, stride=2, partial_channels=4).eval()
    pooled = torch.nn.functional.max_pool2d(x, 2, 2)
    torch.testing.assert_close(reduction(x, one_hot("none"))[:, [1, 2, 3, 5, 6, 7]], pooled[:, [2, 4, 6, 3, 5, 7]])


@pytest.mark.parametrize("partial_channels", [1, 4])
def test_an_edge_weight_scales_the_whole_edge(partial_channels):
    torch.manual_seed(0)
    op = MixedOp(list(PRIMITIVES), channels=8, stride=1, partial_channels=partial_channels).eval()
    x, weights = torch.randn(2, 8, 6, 6), torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    torch.testing.assert_close(op(x, weights, torch.tensor(0.3)), 0.3 * op(x, weights))


def test_edge_weights_are_a_softmax_per_node():
    betas = torch.randn(14)
    weights = node_softmax(betas, num_nodes=4)
    for node, edges in enumerate([slice(0, 2), slice(2, 5), slice(5, 9), slice(9, 14)]):
        torch.testing.assert_close(weights[edges], torch.softmax(betas[edges], 0))
        assert weights[edges].sum().item() == pytest.approx(1.0), node


def test_betas_choose_the_derived_cells_inputs_and_are_saved(tmp_path):
    model = tiny_supernet(partial_channels=2)
    assert model.config.edge_normalization and len(model.arch_parameters()) == 4
    with torch.no_grad():
        for alpha in model.arch_parameters():
            alpha.zero_()
        # Node 1 (edges 2-4, inputs 0-2): the alphas favour inputs 0 and 1 a little, the betas input 2 strongly.
        model.alphas_normal[2:4, PRIMITIVES.index("sep_conv_3x3")] = 1.0
        model.alphas_normal[4, PRIMITIVES.index("skip_connect")] = 0.5
        model.betas["normal"][4] = 5.0
    inputs = sorted(source for _, source in model.genotype().normal[2:])
    assert 2 in inputs and ("skip_connect", 2) in model.genotype().normal
    # The same alphas without the betas keep inputs 0 and 1.
    darts = tiny_supernet()
    with torch.no_grad():
        darts.alphas_normal.copy_(model.alphas_normal)
        darts.alphas_reduce.copy_(model.alphas_reduce)
    assert sorted(source for _, source in darts.genotype().normal[2:]) == [0, 1]

    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert loaded.config.partial_channels == 2 and torch.equal(loaded.betas["normal"], model.betas["normal"])
    assert loaded.genotype() == model.genotype()


@pytest.mark.parametrize("order", [1, 2])
def test_the_architect_trains_alphas_and_betas_only(order):
    torch.manual_seed(0)
    model = tiny_supernet(partial_channels=2).train()
    weight_optimizer = torch.optim.SGD(model.weight_parameters(), lr=0.1, momentum=0.9)
    architect = Architect(model, torch.optim.Adam(model.arch_parameters(), lr=3e-2), order=order)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    architect.step(batch(1), batch(2), weight_optimizer)
    for name, tensor in model.state_dict().items():
        assert (not torch.equal(tensor, before[name])) == name.startswith(("alphas", "betas")), name


def test_activation_checkpointing_gives_the_same_gradients_with_partial_channels():
    torch.manual_seed(0)
    plain = tiny_supernet(partial_channels=2).train()
    checkpointed = tiny_supernet(partial_channels=2).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    for model in (plain, checkpointed):
        model(**batch()).loss.backward()
    for a, b in zip(plain.parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def test_partial_channels_must_divide_the_channels():
    with pytest.raises(ValueError, match="partial_channels must divide init_channels"):
        DartsSearchConfig(init_channels=6, partial_channels=4)


def test_a_pc_darts_search_records_the_edge_weights(tmp_path):
    supernet = run_search(tiny_search_args(tmp_path, epochs=1, partial_channels=2))
    assert supernet.config.partial_channels == 2 and supernet.config.edge_normalization
    (record,) = json.loads((tmp_path / "alphas_history.json").read_text())
    torch.testing.assert_close(torch.tensor(record["edge_weights_normal"]), supernet.edge_weights("normal").detach())
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "supernet")
    assert loaded.genotype() == supernet.genotype()


@pytest.mark.parametrize("channels", [2, 4])
def test_factorized_reduce_with_few_channels_computes_the_strided_convolutions(channels):
    """With 4 or fewer input channels FactorizedReduce subsamples before its 1x1 convolutions (the strided ones crash
    in the channels-last layout on the CPU): the same outputs and gradients as the strided convolutions, in both
    layouts."""
    torch.manual_seed(0)
    reduce = FactorizedReduce(channels, 4, affine=False).train()
    assert reduce.subsample_first and reduce.conv_1.stride == (1, 1)
    x = torch.randn(8, channels, 7, 7)

    def strided(x):
        x = torch.relu(x)
        shifted = torch.nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        halves = [torch.nn.functional.conv2d(x, reduce.conv_1.weight, stride=2)]
        halves.append(torch.nn.functional.conv2d(shifted, reduce.conv_2.weight, stride=2))
        return torch.nn.functional.batch_norm(torch.cat(halves, 1), None, None, training=True)

    torch.testing.assert_close(reduce(x), strided(x))
    gradients, projection = [], torch.randn(8, 4, 4, 4)
    for layout in (torch.contiguous_format, torch.channels_last):
        reduce.to(memory_format=layout).zero_grad()
        (reduce(x.contiguous(memory_format=layout)) * projection).sum().backward()
        gradients.append(flat([reduce.conv_1.weight.grad, reduce.conv_2.weight.grad]))
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-4, atol=1e-4)  # summed in other orders


def test_channel_shuffle_keeps_the_layout():
    x = torch.randn(2, 8, 3, 3)
    channels_last = channel_shuffle(x.contiguous(memory_format=torch.channels_last), 4)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(channels_last, channel_shuffle(x, 4), rtol=0, atol=0)
    torch.testing.assert_close(channel_shuffle(x, 4), x[:, [0, 2, 4, 6, 1, 3, 5, 7]], rtol=0, atol=0)
