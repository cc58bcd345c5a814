"""The NAS-Bench-201 search supernet: its cell against the definition (node i sums the weighted candidates of every
earlier state), the genotype (the strongest operation of every edge, 'none' included), BatchNorm without running
statistics in the cells, its fast form, and saving, loading and running it without darts-hub."""

import json

import pytest
import torch
from test_remote_code import load_without_darts_hub, saved_code
from transformers import AutoModelForImageClassification

from darts_hub import NasBench201Config, NasBench201Genotype, NasBench201SearchConfig, NasBench201SearchModel
from darts_hub.hub import save_search_result
from darts_hub.kernels import kernelize
from darts_hub.models.genotypes import NAS_BENCH_201_OPERATIONS, derive_nas_bench_201_genotype
from darts_hub.models.modeling_nas_bench_201_search import NasBench201SearchCell


def tiny_supernet(**settings) -> NasBench201SearchModel:
    torch.manual_seed(0)
    return NasBench201SearchModel(NasBench201SearchConfig(init_channels=4, cells_per_stage=1, **settings))


def test_the_cell_sums_every_candidate_of_every_earlier_state_weighted():
    torch.manual_seed(0)
    cell = NasBench201SearchCell(NasBench201SearchConfig(), 4).double()
    weights = torch.rand(6, 5, dtype=torch.float64)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)

    def mixed(edge, state):  # 'none' adds nothing; pooling is bare (no BatchNorm after it)
        ops = cell.edges[edge].ops
        return sum(weights[edge, NAS_BENCH_201_OPERATIONS.index(name)] * op(state) for name, op in ops.items())

    assert list(cell.edges[0].ops) == ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    assert isinstance(cell.edges[0].ops["avg_pool_3x3"], torch.nn.AvgPool2d)
    node1 = mixed(0, x)
    node2 = mixed(1, x) + mixed(2, node1)
    node3 = mixed(3, x) + mixed(4, node1) + mixed(5, node2)
    torch.testing.assert_close(cell(x, weights), node3)


def test_the_genotype_keeps_every_edges_strongest_operation_none_included():
    supernet = tiny_supernet()
    strongest = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    with torch.no_grad():
        for edge, name in enumerate(strongest):
            supernet.alphas["cell"][edge, NAS_BENCH_201_OPERATIONS.index(name)] += 0.5
    genotype = supernet.genotype()
    assert str(genotype) == "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    assert NasBench201Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype
    # Ties go to the first column; a wrong shape is refused.
    assert str(derive_nas_bench_201_genotype(torch.zeros(6, 5))) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with pytest.raises(ValueError, match=r"alphas has shape \(6, 4\); 3 nodes need \(6, 5\)"):
        derive_nas_bench_201_genotype(torch.zeros(6, 4))


def test_the_cells_normalise_with_the_batch_statistics_and_the_rest_keeps_running_ones():
    supernet = tiny_supernet()
    cell_norms = [m for m in supernet.layers[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_norms and all(m.running_mean is None and not m.affine for m in cell_norms)
    assert supernet.stem[1].running_mean is not None and supernet.layers[1].conv_a.op[2].running_mean is not None
    cell_keys = [name for name in supernet.state_dict() if name.startswith("layers.0.")]
    assert cell_keys and not any("running" in name or "num_batches" in name for name in cell_keys)
    tracking = tiny_supernet(track_running_stats=True)
    assert all(m.running_mean is not None for m in tracking.layers[0].modules() if isinstance(m, torch.nn.BatchNorm2d))
    # In evaluation a cell gives the same output as in training: the statistics are the batch's either way.
    cell, x, weights = supernet.layers[0], torch.randn(3, 4, 8, 8), torch.softmax(torch.randn(6, 5), -1)
    with torch.no_grad():
        training = cell.train()(x, weights)
        torch.testing.assert_close(cell.eval()(x, weights), training)


@pytest.mark.parametrize("settings", [{}, {"auxiliary_skip": True}, {"relaxation": "gumbel"}])
def test_the_fast_supernet_computes_what_the_plain_one_does(settings):
    plain = tiny_supernet(**settings).train()
    fast = kernelize(tiny_supernet(**settings)).train()
    if settings.get("auxiliary_skip"):
        plain.auxiliary_skip_weight = fast.auxiliary_skip_weight = 0.7
    pixel_values, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    outputs = []
    for model in (plain, fast):
        # The same Gumbel sample, one whose cells depend on their input (seed 1 draws 'none' into node 1 and both
        # ends of node 3: a constant cell, whose gradient the next BatchNorm cancels).
        torch.manual_seed(2)
        output = model(pixel_values, labels=labels)
        output.loss.backward()
        outputs.append((output.logits, model.alphas["cell"].grad, model.stem[0].weight.grad))
    for plain_tensor, fast_tensor in zip(*outputs):
        torch.testing.assert_close(fast_tensor, plain_tensor, rtol=1e-4, atol=1e-5)
    assert outputs[0][1].abs().sum() > 0


def test_the_sampling_relaxations_weigh_as_in_the_darts_supernet():
    gumbel = tiny_supernet(relaxation="gumbel").train()
    weights = gumbel.mixing_weights()["cell"]
    assert torch.equal(weights.detach().sum(-1), torch.ones(6)) and set(weights.detach().unique().tolist()) == {0, 1}
    dirichlet = tiny_supernet(relaxation="dirichlet").eval()
    concentration = torch.nn.functional.elu(dirichlet.alphas["cell"]) + 1
    torch.testing.assert_close(dirichlet.mixing_weights()["cell"], concentration / concentration.sum(-1, keepdim=True))
    with pytest.raises(ValueError, match="relaxation must be one of .*'softmax', 'gumbel', 'dirichlet'.*'sigmoid'"):
        NasBench201SearchConfig(relaxation="sigmoid")


def test_a_search_result_loads_its_supernet_and_network_without_darts_hub(tmp_path):
    supernet = tiny_supernet().eval()
    save_search_result(tmp_path / "result", supernet, [], {}, {}, "digits")
    config = NasBench201Config.from_pretrained(tmp_path / "result")
    assert config.get_genotype() == supernet.genotype()
    assert (config.init_channels, config.cells_per_stage) == (4, 1)
    assert "modeling_nas_bench_201.py" in saved_code(tmp_path / "result")
    assert "modeling_nas_bench_201_search.py" in saved_code(tmp_path / "result" / "supernet")
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "result" / "supernet").eval()
    assert isinstance(loaded, NasBench201SearchModel)
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = supernet(pixel_values).logits
        torch.testing.assert_close(loaded(pixel_values).logits, expected, rtol=0, atol=0)
    outputs, text = load_without_darts_hub(
        "search_result", tmp_path / "result", {"pixel_values": pixel_values}, tmp_path
    )
    torch.testing.assert_close(outputs["supernet_logits"], expected, rtol=0, atol=1e-5)
    assert text["genotype"] == json.loads(json.dumps(supernet.genotype().to_dict()))
    assert text["network_genotype"] == str(supernet.genotype())
    assert outputs["network_logits"].shape == (2, 10)
