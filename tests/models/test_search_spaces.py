"""RobustDARTS's search spaces S1-S4: each edge's candidates as their table, the noise candidate, the genotype
derived from per-edge candidates, and the refusals."""

import pytest
import torch

from darts_hub.models.genotypes import SEARCH_SPACES, derive_genotype
from darts_hub.models.modeling_darts_search import DartsSearchConfig, DartsSearchModel
from darts_hub.models.ops import Noise, build_operation


def supernet(space: str) -> DartsSearchModel:
    return DartsSearchModel(DartsSearchConfig(init_channels=4, num_cells=3, image_size=8, search_space=space))


@pytest.mark.parametrize("space", ["s1", "s2", "s3", "s4"])
def test_every_edge_holds_its_candidates_and_the_alphas_one_column_each(space):
    model = supernet(space)
    table = SEARCH_SPACES[space]
    for cell in model.cells:
        kind = "reduce" if cell.reduction else "normal"
        for edge, names in zip(cell.edges, table[kind], strict=True):
            assert list(edge.ops) == [name for name in names if name != "none"]  # 'none' costs nothing
    assert tuple(model.alphas_normal.shape) == (14, len(table["normal"][0]))
    logits = model(torch.randn(2, 3, 8, 8)).logits
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_s1_gives_edges_their_own_pairs():
    s1 = SEARCH_SPACES["s1"]
    assert len(s1["normal"]) == len(s1["reduce"]) == 14
    assert s1["normal"][5] == ("max_pool_3x3", "skip_connect") and s1["reduce"][0] == ("max_pool_3x3", "avg_pool_3x3")
    assert DartsSearchConfig(search_space="s1").column_names("normal") == ["candidate 1", "candidate 2"]
    assert DartsSearchConfig(search_space="s4").column_names("reduce") == ["noise", "sep_conv_3x3"]


def test_the_genotype_names_each_edge_by_its_own_candidates():
    # Every edge prefers its second candidate; node i's edges from the newest states weigh most.
    alphas = torch.zeros(14, 2)
    alphas[:, 1] = torch.arange(1.0, 15.0)
    table = SEARCH_SPACES["s1"]
    genotype = derive_genotype(alphas, alphas, candidates=table)
    chosen = [(start + source, source) for node, start in enumerate([0, 2, 5, 9]) for source in (node + 1, node)]
    assert list(genotype.normal) == [(table["normal"][edge][1], source) for edge, source in chosen]
    assert list(genotype.reduce) == [(table["reduce"][edge][1], source) for edge, source in chosen]


def test_noise_is_standard_normal_of_the_strided_shape_whatever_the_input():
    noise = build_operation("noise", 4, 2)
    assert isinstance(noise, Noise) and not list(noise.parameters())
    x = torch.full((64, 4, 9, 9), 123.0)
    out = noise.eval()(x)
    assert out.shape == (64, 4, 5, 5)
    assert abs(out.mean().item()) < 0.05 and abs(out.std().item() - 1) < 0.05


def test_a_search_space_needs_its_four_nodes_and_a_known_name():
    with pytest.raises(ValueError, match="search_space must be one of \\['darts', 's1', 's2', 's3', 's4'\\]"):
        DartsSearchConfig(search_space="s5")
    with pytest.raises(ValueError, match="Search space s2 lists the candidates of a 4-node cell's 14 edges"):
        DartsSearchConfig(search_space="s2", num_nodes=3, multiplier=3)
