import json

import pytest
import torch

from darts_hub.models.genotypes import (
    CNN_GENOTYPES,
    DARTS_V2,
    PRIMITIVES,
    RECURRENT_DARTS_V2,
    RECURRENT_GENOTYPES,
    RECURRENT_PRIMITIVES,
    Genotype,
    RecurrentGenotype,
    as_genotype,
    derive_genotype,
    derive_recurrent_genotype,
    get_genotype,
    load_genotype,
)
from darts_hub.models.ops import OPS


def cell(normal, reduce=None, normal_concat=(2, 3), reduce_concat=(2, 3)):
    return Genotype(
        normal=normal,
        normal_concat=normal_concat,
        reduce=reduce or [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1)],
        reduce_concat=reduce_concat,
    )


GOOD_NORMAL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2)]


@pytest.mark.parametrize("name", list(CNN_GENOTYPES))
def test_cnn_zoo_round_trips_through_json(name):
    genotype = CNN_GENOTYPES[name]
    text = genotype.to_json()
    assert Genotype.from_json(text) == genotype
    assert json.loads(text)["normal_concat"] == list(genotype.normal_concat)


@pytest.mark.parametrize("name", list(RECURRENT_GENOTYPES))
def test_recurrent_zoo_round_trips_through_json(name):
    genotype = RECURRENT_GENOTYPES[name]
    assert RecurrentGenotype.from_json(genotype.to_json()) == genotype


def test_zoo_aliases_and_known_cells():
    assert get_genotype("DARTS") is get_genotype("DARTS_V2") is DARTS_V2
    assert get_genotype("DARTS", recurrent=True) is RECURRENT_DARTS_V2
    assert DARTS_V2.normal[-1] == ("dil_conv_3x3", 2)
    assert RECURRENT_DARTS_V2.concat == tuple(range(1, 9))
    with pytest.raises(KeyError, match="NASNet"):
        get_genotype("DARTS_V3")


def test_operations_registry_covers_every_zoo_operation():
    used = {op for genotype in CNN_GENOTYPES.values() for op, _ in genotype.normal + genotype.reduce}
    assert used <= set(OPS)
    assert {"sep_conv_7x7", "conv_7x1_1x7"} <= used
    assert set(PRIMITIVES) - {"none"} <= set(OPS)


@pytest.mark.parametrize(
    "normal, concat, message",
    [
        ([("sep_conv_9x9", 0), ("sep_conv_3x3", 1)], (2,), r"normal\[0\] = \('sep_conv_9x9', 0\).*unknown operation"),
        ([("sep_conv_3x3", 0), ("none", 1)], (2,), r"normal\[1\].*'none'"),
        (
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 4), ("sep_conv_3x3", 1)],
            (2, 3),
            r"normal\[2\] = \('skip_connect', 4\) \(node 1\) takes input 4.*0\.\.2",
        ),
        ([("sep_conv_3x3", 0), ("sep_conv_3x3", -1)], (2,), r"normal\[1\].*takes input -1"),
        ([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0)], (2,), r"normal has 3 entries"),
        ([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], (2, 3), r"normal_concat holds 3.*0\.\.2"),
        ([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], (2, 2), r"normal_concat lists state\(s\) \[2\] more than once"),
        ([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], (), r"normal_concat is empty"),
        ([("sep_conv_3x3", 1), ("sep_conv_3x3", 1)], (2,), r"normal\[1\] = \('sep_conv_3x3', 1\).*duplicates"),
        ([("sep_conv_3x3", "0"), ("sep_conv_3x3", 1)], (2,), r"normal\[0\].*not an \[operation name, input index\]"),
    ],
)
def test_invalid_cnn_genotypes_name_the_bad_entry(normal, concat, message):
    with pytest.raises(ValueError, match=message):
        cell(normal, normal_concat=concat, reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)], reduce_concat=(2,))


def test_invalid_reduce_cell_is_named():
    with pytest.raises(ValueError, match=r"reduce\[3\] = \('max_pool_3x3', 3\) \(node 1\)"):
        cell(GOOD_NORMAL, reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 3)])


def test_published_nasnet_keeps_its_repeated_edge_but_others_may_not():
    nasnet = get_genotype("NASNet")
    assert nasnet.normal[6] == nasnet.normal[7] == ("avg_pool_3x3", 0)
    with pytest.raises(ValueError, match="duplicates"):
        Genotype(
            nasnet.normal[:6] + (("avg_pool_3x3", 0), ("avg_pool_3x3", 0)),
            (2, 3, 4, 5),
            nasnet.reduce,
            nasnet.reduce_concat,
        )


@pytest.mark.parametrize(
    "recurrent, concat, message",
    [
        ([("tanh", 0), ("gelu", 1)], (1, 2), r"recurrent\[1\] = \('gelu', 1\) \(node 2\).*unknown operation"),
        ([("tanh", 0), ("relu", 2)], (1, 2), r"recurrent\[1\] = \('relu', 2\) \(node 2\) takes input 2.*0\.\.1"),
        ([("tanh", 0), ("relu", 1)], (1, 3), r"concat holds 3"),
        ([("tanh", 0), ("none", 1)], (1, 2), r"recurrent\[1\].*'none'"),
        ([], (0,), r"recurrent is empty"),
    ],
)
def test_invalid_recurrent_genotypes_name_the_bad_entry(recurrent, concat, message):
    with pytest.raises(ValueError, match=message):
        RecurrentGenotype(recurrent=recurrent, concat=concat)


def test_from_dict_rejects_wrong_keys():
    data = DARTS_V2.to_dict()
    del data["reduce_concat"]
    data["reduction"] = []
    with pytest.raises(ValueError, match=r"missing \['reduce_concat'\], unknown \['reduction'\]"):
        Genotype.from_dict(data)


def test_as_genotype_accepts_names_mappings_and_genotypes():
    assert as_genotype("DARTS_V2") is DARTS_V2
    assert as_genotype(DARTS_V2.to_dict()) == DARTS_V2
    assert as_genotype(DARTS_V2) is DARTS_V2
    assert as_genotype(RECURRENT_DARTS_V2.to_dict(), recurrent=True) == RECURRENT_DARTS_V2


def alphas_for(edges_per_node, num_ops, strong=(), none_strong=()):
    """Architecture weights (logits) with every (node, input) edge weak except those listed in `strong`
    as (node, input, op, logit)."""
    alphas = torch.zeros(sum(edges_per_node), num_ops)
    offsets = [sum(edges_per_node[:node]) for node in range(len(edges_per_node))]
    for node, source, op, logit in strong:
        alphas[offsets[node] + source, op] = logit
    for node, source, logit in none_strong:
        alphas[offsets[node] + source, 0] = logit
    return alphas


def test_derive_genotype_keeps_two_strongest_edges_and_ignores_none():
    op = PRIMITIVES.index
    strong = [
        (0, 0, op("sep_conv_3x3"), 3.0),
        (0, 1, op("skip_connect"), 2.0),
        (1, 2, op("dil_conv_5x5"), 4.0),
        (1, 0, op("max_pool_3x3"), 1.0),
        (1, 1, op("avg_pool_3x3"), 0.5),
        (2, 3, op("sep_conv_5x5"), 2.0),
        (2, 1, op("sep_conv_3x3"), 2.5),
        (3, 4, op("skip_connect"), 1.5),
        (3, 0, op("dil_conv_3x3"), 1.0),
    ]
    # 'none' dominating edges must neither be chosen as an operation nor make its edge strong.
    none_strong = [(0, 1, 9.0), (3, 2, 9.0)]
    normal = alphas_for([2, 3, 4, 5], len(PRIMITIVES), strong, none_strong)
    reduce = alphas_for(
        [2, 3, 4, 5],
        len(PRIMITIVES),
        [(n, 0, op("max_pool_3x3"), 1.0) for n in range(4)] + [(n, 1, op("max_pool_3x3"), 0.5) for n in range(4)],
    )
    genotype = derive_genotype(normal, reduce)
    assert genotype.normal == (
        ("sep_conv_3x3", 0),
        ("skip_connect", 1),
        ("dil_conv_5x5", 2),
        ("max_pool_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_5x5", 3),
        ("skip_connect", 4),
        ("dil_conv_3x3", 0),
    )
    assert genotype.reduce == tuple(
        (op_name, i) for _ in range(4) for op_name, i in (("max_pool_3x3", 0), ("max_pool_3x3", 1))
    )
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)


def test_derive_genotype_recovers_a_cell_from_its_alphas():
    def alphas_of(edges):
        strong = [(i // 2, j, PRIMITIVES.index(name), 2.0 + i) for i, (name, j) in enumerate(edges)]
        return alphas_for([2, 3, 4, 5], len(PRIMITIVES), strong)

    derived = derive_genotype(alphas_of(DARTS_V2.normal), alphas_of(DARTS_V2.reduce))
    for mine, theirs in ((derived.normal, DARTS_V2.normal), (derived.reduce, DARTS_V2.reduce)):
        assert [set(mine[i : i + 2]) for i in range(0, 8, 2)] == [set(theirs[i : i + 2]) for i in range(0, 8, 2)]


def test_derive_genotype_checks_shapes():
    with pytest.raises(ValueError, match=r"alphas_normal has shape \(13, 8\); 4 nodes need \(14, 8\)"):
        derive_genotype(torch.zeros(13, 8), torch.zeros(14, 8))


def test_derive_recurrent_genotype_keeps_one_edge_per_node():
    op = RECURRENT_PRIMITIVES.index
    strong = [(node, source, op(name), 2.0) for node, (name, source) in enumerate(RECURRENT_DARTS_V2.recurrent)]
    alphas = alphas_for(list(range(1, 9)), len(RECURRENT_PRIMITIVES), strong, none_strong=[(3, 0, 5.0)])
    assert derive_recurrent_genotype(alphas) == RECURRENT_DARTS_V2
    with pytest.raises(ValueError, match=r"\(36, 5\)"):
        derive_recurrent_genotype(torch.zeros(35, 5))


def test_load_genotype_from_zoo_json_file_and_folders(tmp_path):
    assert load_genotype("NASNet") == get_genotype("NASNet")
    assert load_genotype("ENAS", recurrent=True) == get_genotype("ENAS", recurrent=True)

    (tmp_path / "cell.json").write_text(DARTS_V2.to_json())
    assert load_genotype(tmp_path / "cell.json") == DARTS_V2
    (tmp_path / "rnn.json").write_text(RECURRENT_DARTS_V2.to_json())
    assert load_genotype(tmp_path / "rnn.json") == RECURRENT_DARTS_V2

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "darts", "genotype": DARTS_V2.to_dict()}))
    assert load_genotype(model_dir) == DARTS_V2

    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_genotype(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError, match="neither a zoo genotype"):
        load_genotype("no-such-genotype")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither genotype.json nor config.json"):
        load_genotype(tmp_path / "empty")


def test_parameter_free_operations_count_the_skips_and_pools_of_a_cell():
    # DARTS_V2: two skip connections in the normal cell; a reduction cell of max pooling and skips only.
    assert DARTS_V2.parameter_free_operations() == 2
    assert DARTS_V2.parameter_free_operations("reduce") == 8
    collapsed = Genotype.from_dict({**DARTS_V2.to_dict(), "normal": [["skip_connect", 0], ["avg_pool_3x3", 1]] * 4})
    assert collapsed.parameter_free_operations("normal") == 8
