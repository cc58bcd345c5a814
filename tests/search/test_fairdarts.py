"""FairDARTS (`--relaxation sigmoid`) against its definition: sigmoid operation weights without 'none', the zero-one
loss, the threshold parse by hand, cells whose nodes have 0, 1 or 2 edges (built, kernelized and drawn), and a
search from the flags."""

import json
import math

import pytest
import torch
from helpers import kernelized, tiny_search_args, tiny_supernet
from test_architect import batches
from transformers import AutoConfig, AutoModelForImageClassification

from darts_hub.models import DartsConfig, DartsForImageClassification
from darts_hub.models.genotypes import (
    FAIRDARTS_A,
    PRIMITIVES,
    EmptyCellError,
    Genotype,
    derive_genotype,
    get_genotype,
)
from darts_hub.search.relaxations import ZeroOneLoss
from darts_hub.training.arguments import SearchArguments
from darts_hub.training.search_images import run_search
from darts_hub.visualize import genotype_graphs


FAIR_PRIMITIVES = PRIMITIVES[1:]  # FairDARTS's space: no 'none'
STRONG, WEAK = 3.0, 1.0  # sigmoid 0.953 and 0.731, either side of the threshold 0.85


def fair_alphas(entries):
    """Alphas of a 4-node cell (14 edges) over FairDARTS's 7 candidates, 0 but for (node, input, op, logit)."""
    alphas = torch.zeros(14, len(FAIR_PRIMITIVES))
    for node, source, op, logit in entries:
        alphas[sum(range(2, node + 2)) + source, FAIR_PRIMITIVES.index(op)] = logit
    return alphas


def test_the_sigmoid_relaxation_weighs_each_operation_by_its_own_sigmoid_without_none():
    model = tiny_supernet(relaxation="sigmoid")
    assert model.config.primitives == list(FAIR_PRIMITIVES)
    with torch.no_grad():
        model.alphas_normal.normal_(0, 2)
    for mode in (model.train, model.eval):
        mode()
        torch.testing.assert_close(model.mixing_weights()["normal"], torch.sigmoid(model.alphas_normal))


def test_the_zero_one_loss_is_minus_the_weighted_mean_squared_distance_from_one_half():
    alphas = [torch.randn(5, 7, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    edge_betas = torch.randn(5, dtype=torch.float64, requires_grad=True)
    loss = ZeroOneLoss(weight=10.0)([*alphas, edge_betas])
    values = [1 / (1 + math.exp(-a)) for alpha in alphas for a in alpha.detach().flatten().tolist()]
    by_hand = -10.0 * sum((v - 0.5) ** 2 for v in values) / len(values)
    assert loss.item() == pytest.approx(by_hand, rel=1e-12)
    loss.backward()
    # Descending it pushes every weight away from 0.5: positive alphas up, negative ones down.
    assert torch.all(torch.sign(-alphas[0].grad) == torch.sign(alphas[0].detach()))
    assert edge_betas.grad is None  # PC-DARTS's edge weights are not in it


def test_the_threshold_parse_keeps_the_strong_operations_of_each_nodes_two_strongest_edges():
    normal = fair_alphas(
        [
            (0, 0, "sep_conv_3x3", STRONG),  # node 0: both edges above the threshold
            (0, 1, "sep_conv_5x5", STRONG),
            (1, 2, "max_pool_3x3", STRONG),  # node 1: one edge above, one below
            (1, 0, "dil_conv_3x3", WEAK),
            # node 2: nothing above 0.5: no edges, no state
            (3, 4, "skip_connect", 4.0),  # node 3: its strongest edge reads the empty node 2 and goes
            (3, 0, "sep_conv_3x3", STRONG),
            (3, 1, "avg_pool_3x3", 2.5),  # above the threshold, but the third strongest edge: not kept
        ]
    )
    reduce = fair_alphas([(n, j, "max_pool_3x3", STRONG) for n in range(4) for j in (0, 1)])
    genotype = derive_genotype(normal, reduce, primitives=FAIR_PRIMITIVES, activation="sigmoid", threshold=0.85)
    assert genotype.normal == (("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("max_pool_3x3", 2), ("sep_conv_3x3", 0))
    assert genotype.normal_edges_per_node == (2, 1, 0, 1)
    assert genotype.normal_concat == (2, 3, 5)
    assert genotype.reduce == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4
    assert genotype.reduce_edges_per_node is None and genotype.reduce_concat == (2, 3, 4, 5)
    assert Genotype.from_json(genotype.to_json()) == genotype
    # Without the threshold the same sigmoid weights give two edges per node, as DARTS's rule.
    assert (
        derive_genotype(normal, reduce, primitives=FAIR_PRIMITIVES, activation="sigmoid").normal_edges_per_node is None
    )
    with pytest.raises(EmptyCellError, match="No operation of the normal cell reaches the threshold 0.99"):
        derive_genotype(normal, reduce, primitives=FAIR_PRIMITIVES, activation="sigmoid", threshold=0.99)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"normal_edges_per_node": (2, 0, 1)}, r"normal_edges_per_node = \[2, 0, 1\] counts 3 edges.*lists 4"),
        ({"normal_edges_per_node": (2, -1, 2, 1)}, r"must list a number of edges \(>= 0\)"),
        ({"normal_concat": (2, 3, 4, 5)}, r"normal_concat lists state\(s\) \[3\], node\(s\) without edges"),
        (
            {"normal": FAIRDARTS_A.normal[:3] + (("sep_conv_3x3", 3),)},
            r"normal\[3\] = \('sep_conv_3x3', 3\) \(node 3\) takes input 3, node 1, which has no edges",
        ),
        (
            {"normal": FAIRDARTS_A.normal[:3] + (("max_pool_3x3", 0),), "normal_edges_per_node": (2, 0, 2, 0)},
            r"normal\[3\] = \('max_pool_3x3', 0\) \(node 2\) duplicates another edge of node 2",
        ),
    ],
)
def test_cells_with_empty_nodes_are_validated_naming_the_bad_entry(changes, message):
    fields = {**FAIRDARTS_A.__dict__, **changes}
    with pytest.raises(ValueError, match=message):
        Genotype(**fields)


def test_fairdarts_a_builds_runs_draws_and_kernelizes_like_the_plain_network():
    assert get_genotype("FairDARTS_A") is FAIRDARTS_A
    assert FAIRDARTS_A.node_edges("normal") == (
        (("sep_conv_3x3", 0), ("sep_conv_5x5", 1)),
        (),
        (("max_pool_3x3", 0),),
        (("sep_conv_3x3", 0),),
    )
    config = DartsConfig(genotype=FAIRDARTS_A, init_channels=36, num_cells=20, use_auxiliary_head=True)
    with torch.device("meta"):
        network = DartsForImageClassification(config)
    # Their genotypes.py: "Params: 2.83" (M); the normal cells concatenate 3 nodes, 108 channels at 36.
    assert sum(p.numel() for p in network.parameters()) / 1e6 == pytest.approx(2.83, abs=0.01)
    assert network.darts.cells[0].out_channels == 3 * 36
    source = genotype_graphs(FAIRDARTS_A)["normal"].source
    assert "\t1 [" not in source and '1 -> "c_{k}"' not in source  # the empty node is not drawn
    torch.manual_seed(0)
    small = DartsForImageClassification(
        DartsConfig(genotype=FAIRDARTS_A, init_channels=8, num_cells=5, use_auxiliary_head=False)
    ).double()
    fast = kernelized(small)
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(small, mode)(), getattr(fast, mode)()
        torch.testing.assert_close(fast(images).logits, small(images).logits, rtol=1e-12, atol=1e-12)


def test_the_kernelized_sigmoid_supernet_trains_as_the_plain_one():
    torch.manual_seed(0)
    plain = tiny_supernet(relaxation="sigmoid").double().train()
    fast = kernelized(plain)
    _, valid = batches(2)
    losses = [model(**valid).loss for model in (plain, fast)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(fast.parameters(), plain.parameters()):
        if theirs.grad is not None:
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-9, atol=1e-12)


def test_a_fairdarts_search_from_the_flags_writes_a_thresholded_cell_that_builds(tmp_path):
    args = tiny_search_args(
        tmp_path / "fair", epochs=2, relaxation="sigmoid", operation_threshold=0.5, num_nodes=4, multiplier=4
    )
    supernet = run_search(args)
    history = json.loads((tmp_path / "fair" / "alphas_history.json").read_text())
    genotype = Genotype.from_json((tmp_path / "fair" / "genotype.json").read_text())
    assert genotype == supernet.genotype()
    # The recorded weights are the sigmoids the threshold reads, over the seven candidates without 'none'.
    torch.testing.assert_close(
        torch.tensor(history[-1]["alphas_normal"]), torch.sigmoid(supernet.alphas_normal.detach().float())
    )
    assert len(history[-1]["alphas_normal"][0]) == 7
    assert all(weight >= 0.5 for weight in _kept_weights(genotype, history[-1]))
    model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(tmp_path / "fair"))
    assert model.config.get_genotype() == genotype
    assert model(torch.randn(2, 3, 8, 8)).logits.shape == (2, 10)
    # At FairDARTS's 0.85 two epochs keep nothing: the epochs record no cell, and the search says what to change.
    with pytest.raises(EmptyCellError, match="reaches the threshold 0.85.*search longer, or lower the threshold"):
        run_search(tiny_search_args(tmp_path / "strict", epochs=1, relaxation="sigmoid"))
    assert not (tmp_path / "strict" / "genotype.json").exists()  # no half-written result folder


def _kept_weights(genotype: Genotype, record: dict) -> list[float]:
    weights = []
    for cell in ("normal", "reduce"):
        start = 0
        for node, edges in enumerate(genotype.node_edges(cell)):
            for op, source in edges:
                weights.append(record[f"alphas_{cell}"][start + source][FAIR_PRIMITIVES.index(op)])
            start += node + 2
    return weights


def test_what_the_sigmoid_relaxation_does_not_go_with_is_refused_naming_both_flags():
    with pytest.raises(ValueError, match="--regulariser beta_decay acts on the softmax .* --relaxation sigmoid"):
        SearchArguments(relaxation="sigmoid", regulariser="beta_decay")
    with pytest.raises(ValueError, match=r"--operation_threshold is a sigmoid weight, in \[0, 1\]; got 1.5"):
        SearchArguments(relaxation="sigmoid", operation_threshold=1.5)
    assert SearchArguments(relaxation="sigmoid", order=2, hessian_eigenvalue_every=1).order == 2  # deterministic
