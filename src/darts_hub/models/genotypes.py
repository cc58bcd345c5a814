"""Cell genotypes: the discrete architectures that DARTS searches for and the networks are built from.

A convolutional cell (Sec. 2.1 of the paper) has two inputs, c_{k-2} and c_{k-1} (indices 0 and 1), and a number of
intermediate nodes; intermediate node i is the sum of two edges, each an operation applied to an earlier state
(index 0 .. i + 1). The cell's output concatenates the states listed in its `concat`. FairDARTS's threshold parse
(Chu et al. 2020) keeps 0, 1 or 2 edges per node: `normal_edges_per_node` / `reduce_edges_per_node` then give each
node's number of edges, and a node without edges is no state (no edge reads it, the output leaves it out). A
recurrent cell has one initial state (index 0, computed from x_t and h_{t-1}) and nodes with one incoming edge each;
its output averages the states in `concat`.

Genotypes are immutable, validated when built (every error names the offending entry) and stored as plain JSON in
model configs: `{"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5], ...}`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch


# Candidate operations of the convolutional search space, in the order of the architecture weights' columns.
PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
# Operations a derived convolutional cell may use: the search space without 'none' (which means "no edge"), plus the
# two operations that only NASNet and AmoebaNet use.
CNN_OPERATIONS = PRIMITIVES[1:] + ("sep_conv_7x7", "conv_7x1_1x7", "noise")
# The candidates without weights: the ones a collapsed search fills its cells with (RobustDARTS, DARTS+).
PARAMETER_FREE_OPERATIONS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "noise")

# RobustDARTS's search spaces (Zela et al. 2020, Sec. 3, and their code): the candidates of each of the 14 edges of a
# 4-node cell (the edges of node 0, then node 1, ...), normal and reduction cells. S1 gives each edge the two
# operations a DARTS search weighed most on it; S2 (skip, sep_conv_3x3), S3 (the same and none) and S4 (noise,
# sep_conv_3x3) give every edge the same ones. "darts" is the paper's space: all eight on every edge.
_SKIP_SEP = ("skip_connect", "sep_conv_3x3")
_S1_NORMAL = (
    ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"),
    _SKIP_SEP,
    ("skip_connect", "dil_conv_3x3"),
    ("max_pool_3x3", "skip_connect"),
    _SKIP_SEP,
    _SKIP_SEP,
    ("skip_connect", "dil_conv_3x3"),
    _SKIP_SEP,
    ("max_pool_3x3", "skip_connect"),
    ("skip_connect", "dil_conv_3x3"),
    ("dil_conv_3x3", "dil_conv_5x5"),
    ("dil_conv_3x3", "dil_conv_5x5"),
)
_POOLS = ("max_pool_3x3", "avg_pool_3x3")
_S1_REDUCE = (
    _POOLS,
    ("max_pool_3x3", "dil_conv_3x3"),
    _POOLS,
    _POOLS,
    ("skip_connect", "dil_conv_5x5"),
    _POOLS,
    ("max_pool_3x3", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "dil_conv_5x5"),
    _POOLS,
    _POOLS,
    ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"),
)
SEARCH_SPACES: dict[str, dict[str, tuple[tuple[str, ...], ...]] | None] = {
    "darts": None,  # `primitives` on every edge, of any number of nodes
    "s1": {"normal": _S1_NORMAL, "reduce": _S1_REDUCE},
    "s2": {"normal": (_SKIP_SEP,) * 14, "reduce": (_SKIP_SEP,) * 14},
    "s3": {"normal": (("none", *_SKIP_SEP),) * 14, "reduce": (("none", *_SKIP_SEP),) * 14},
    "s4": {"normal": (("noise", "sep_conv_3x3"),) * 14, "reduce": (("noise", "sep_conv_3x3"),) * 14},
}

# NAS-Bench-201's operations (Dong & Yang 2020, Sec. 2.1), in the order of its searches' alpha columns: every edge of
# its cell is one of them, 'none' included (a zero edge), so that its 6 edges span the benchmark's 5^6 = 15,625 cells.
NAS_BENCH_201_OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

# Candidate operations of the recurrent search space, in the order of the architecture weights' columns.
RECURRENT_PRIMITIVES = ("none", "tanh", "relu", "sigmoid", "identity")
RECURRENT_OPERATIONS = RECURRENT_PRIMITIVES[1:]

Edge = tuple[str, int]


def _as_edges(entries: Iterable, field_name: str) -> tuple[Edge, ...]:
    edges = []
    for position, entry in enumerate(entries):
        if (
            not isinstance(entry, Sequence)
            or isinstance(entry, str)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or isinstance(entry[1], bool)
            or not isinstance(entry[1], int)
        ):
            raise ValueError(f"{field_name}[{position}] = {entry!r} is not an [operation name, input index] pair.")
        edges.append((entry[0], entry[1]))
    return tuple(edges)


def _as_concat(values: Iterable, field_name: str, num_states: int) -> tuple[int, ...]:
    concat = tuple(values)
    if not concat:
        raise ValueError(f"{field_name} is empty: a cell must output at least one state.")
    for value in concat:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_states:
            raise ValueError(
                f"{field_name} holds {value!r}, which is not a state of this cell: valid indices are 0..{num_states - 1}."
            )
    duplicates = sorted({value for value in concat if concat.count(value) > 1})
    if duplicates:
        raise ValueError(f"{field_name} lists state(s) {duplicates} more than once.")
    return concat


def _as_edges_per_node(values: Iterable, field_name: str, num_edges: int) -> tuple[int, ...]:
    counts = tuple(values)
    if not counts or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
        raise ValueError(f"{field_name} = {list(counts)!r} must list a number of edges (>= 0) for every node.")
    if sum(counts) != num_edges:
        raise ValueError(f"{field_name} = {list(counts)} counts {sum(counts)} edges, but the cell lists {num_edges}.")
    return counts


def _check_operation(op: str, allowed: Sequence[str], where: str) -> None:
    if op == "none":
        raise ValueError(
            f"{where} uses 'none', which is a search-space candidate meaning 'no edge'; a derived cell cannot use it."
        )
    if op not in allowed:
        raise ValueError(f"{where} uses the unknown operation {op!r}; known operations: {', '.join(allowed)}.")


# Published cells that apply the same operation to the same input twice in one node. NASNet-A's normal cell really
# does this (two 3x3 average poolings of c_{k-2}); anywhere else a repeated edge is almost surely a typo.
_PUBLISHED_REPEATED_EDGES = {
    (
        ("sep_conv_5x5", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_5x5", 0),
        ("sep_conv_3x3", 0),
        ("avg_pool_3x3", 1),
        ("skip_connect", 0),
        ("avg_pool_3x3", 0),
        ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 1),
    ),
}


@dataclass(frozen=True)
class Genotype:
    """A convolutional architecture: a normal cell and a reduction cell.

    `normal` and `reduce` list the `(operation, input index)` edges of the intermediate nodes, node by node: two per
    node, or as many as `normal_edges_per_node` / `reduce_edges_per_node` say (FairDARTS's cells; None means two
    each). `normal_concat` and `reduce_concat` list the states concatenated into the cell's output.
    """

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    normal_edges_per_node: tuple[int, ...] | None = None
    reduce_edges_per_node: tuple[int, ...] | None = None
    # The cell where a search's collapse shows (skips and pooling crowd it out): DARTS+'s rule and the records count
    # its operations.
    watched_cell: ClassVar[str] = "normal cell"

    def __post_init__(self):
        for cell in ("normal", "reduce"):
            edges = _as_edges(getattr(self, cell), cell)
            counts_field = f"{cell}_edges_per_node"
            if getattr(self, counts_field) is not None:
                counts = _as_edges_per_node(getattr(self, counts_field), counts_field, len(edges))
            elif not edges or len(edges) % 2:
                raise ValueError(
                    f"{cell} has {len(edges)} entries; a convolutional cell needs two entries (edges) per node, or "
                    f"{counts_field} to give each node its number."
                )
            else:
                counts = (2,) * (len(edges) // 2)
            is_state = [True, True]  # the cell's inputs, then one entry per node: whether it has edges
            starts = itertools.accumulate(counts, initial=0)
            for node, (start, count) in enumerate(zip(starts, counts)):
                for position in range(start, start + count):
                    op, index = edges[position]
                    where = f"{cell}[{position}] = ({op!r}, {index}) (node {node})"
                    _check_operation(op, CNN_OPERATIONS, where)
                    if not 0 <= index < node + 2:
                        raise ValueError(
                            f"{where} takes input {index}, but node {node} can only take inputs 0..{node + 1} "
                            "(0 and 1 are the cell's inputs c_{k-2} and c_{k-1}, then the earlier nodes)."
                        )
                    if not is_state[index]:
                        raise ValueError(f"{where} takes input {index}, node {index - 2}, which has no edges.")
                    if (op, index) in edges[start:position] and edges not in _PUBLISHED_REPEATED_EDGES:
                        raise ValueError(f"{where} duplicates another edge of node {node}.")
                is_state.append(count > 0)
            object.__setattr__(self, cell, edges)
            object.__setattr__(self, counts_field, None if all(count == 2 for count in counts) else counts)
            concat_field = f"{cell}_concat"
            concat = _as_concat(getattr(self, concat_field), concat_field, len(counts) + 2)
            empty = [index for index in concat if not is_state[index]]
            if empty:
                raise ValueError(f"{concat_field} lists state(s) {empty}, node(s) without edges.")
            object.__setattr__(self, concat_field, concat)

    def node_edges(self, cell: str = "normal") -> tuple[tuple[Edge, ...], ...]:
        """The edges of each intermediate node of the `cell` ("normal" or "reduce"), node by node (a node without
        edges has an empty tuple)."""
        edges = getattr(self, cell)
        counts = getattr(self, f"{cell}_edges_per_node") or (2,) * (len(edges) // 2)
        starts = itertools.accumulate(counts, initial=0)
        return tuple(edges[start : start + count] for start, count in zip(starts, counts))

    def operations(self, cell: str = "normal") -> list[str]:
        """The operations of the `cell`'s ("normal" or "reduce") edges, in order."""
        return [op for op, _ in getattr(self, cell)]

    def parameter_free_operations(self, cell: str = "normal") -> int:
        """How many edges of the `cell` ("normal" or "reduce") are skip connections or pooling: the measure of a
        search's collapse."""
        return sum(op in PARAMETER_FREE_OPERATIONS for op in self.operations(cell))

    def to_dict(self) -> dict:
        return _to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping) -> Genotype:
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class RecurrentGenotype:
    """A recurrent cell: one `(activation, input index)` edge per node and the states averaged into h_t.

    State 0 is the cell's initial node (computed from x_t and h_{t-1}); node i (1-based) is entry i - 1 and may take
    any earlier state 0 .. i - 1 as input.
    """

    recurrent: tuple[Edge, ...]
    concat: tuple[int, ...]

    def __post_init__(self):
        edges = _as_edges(self.recurrent, "recurrent")
        if not edges:
            raise ValueError("recurrent is empty: a recurrent cell needs at least one node.")
        for position, (op, index) in enumerate(edges):
            where = f"recurrent[{position}] = ({op!r}, {index}) (node {position + 1})"
            _check_operation(op, RECURRENT_OPERATIONS, where)
            if not 0 <= index <= position:
                raise ValueError(f"{where} takes input {index}, but node {position + 1} can only take 0..{position}.")
        object.__setattr__(self, "recurrent", edges)
        object.__setattr__(self, "concat", _as_concat(self.concat, "concat", len(edges) + 1))

    @property
    def num_nodes(self) -> int:
        return len(self.recurrent)

    def to_dict(self) -> dict:
        return _to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping) -> RecurrentGenotype:
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> RecurrentGenotype:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class NasBench201Genotype:
    """A NAS-Bench-201 cell (Dong & Yang 2020): a complete DAG on the cell's input (state 0) and its nodes 1, 2, 3;
    node i sums one edge from every earlier state, each an operation of `NAS_BENCH_201_OPERATIONS` ('none': the
    edge is absent), and the cell's output is its last node.

    `nodes[i - 1]` lists node i's `(operation, input)` edges, inputs 0 .. i - 1 in order. The benchmark's string,
    `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`, is
    `str(genotype)` and `NasBench201Genotype.from_string`; config.json stores that string.
    """

    nodes: tuple[tuple[Edge, ...], ...]
    # The cell where a search's collapse shows: the one cell (see `Genotype.watched_cell`).
    watched_cell: ClassVar[str] = "cell"

    def __post_init__(self):
        if isinstance(self.nodes, str) or not self.nodes:
            raise ValueError(f"nodes = {self.nodes!r} must list the edges of at least one node.")
        nodes = []
        for position, entries in enumerate(self.nodes):
            node = position + 1
            edges = _as_edges(entries, f"nodes[{position}]")
            if [index for _, index in edges] != list(range(node)):
                raise ValueError(
                    f"node {node} has edges from inputs {[index for _, index in edges]}; a NAS-Bench-201 node has one "
                    f"edge from each earlier state, in order: {list(range(node))}."
                )
            for op, index in edges:
                if op not in NAS_BENCH_201_OPERATIONS:
                    raise ValueError(
                        f"node {node}'s edge from {index} uses the unknown operation {op!r}; NAS-Bench-201's "
                        f"operations: {', '.join(NAS_BENCH_201_OPERATIONS)}."
                    )
            nodes.append(edges)
        object.__setattr__(self, "nodes", tuple(nodes))

    @classmethod
    def from_string(cls, text: str) -> NasBench201Genotype:
        """Parse the benchmark's string: nodes between `+`, each `|op~input|op~input|`."""
        nodes = []
        for part in text.split("+"):
            if not (part.startswith("|") and part.endswith("|")) or len(part) < 2:
                raise ValueError(f"{part!r} in {text!r} is not a node of the form |op~input|op~input|.")
            edges = []
            for token in part[1:-1].split("|"):
                op, _, index = token.partition("~")
                if not index.isdigit():
                    raise ValueError(f"{token!r} in {text!r} is not an edge of the form op~input.")
                edges.append((op, int(index)))
            nodes.append(edges)
        return cls(nodes)

    def __str__(self) -> str:
        return "+".join("|" + "|".join(f"{op}~{index}" for op, index in edges) + "|" for edges in self.nodes)

    def operations(self) -> list[str]:
        """The operations of the cell's edges, node by node ('none' included)."""
        return [op for edges in self.nodes for op, _ in edges]

    def parameter_free_operations(self) -> int:
        """How many edges are skips or pooling (the 'none' edges not counted)."""
        return sum(op in PARAMETER_FREE_OPERATIONS for op in self.operations())

    def to_dict(self) -> dict:
        """`{"nodes": [[[op, input], ...], ...]}`, the form of a search's records and genotype.json (the string is
        config.json's)."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> NasBench201Genotype:
        return _from_dict(cls, data)


def _to_dict(genotype: Genotype | RecurrentGenotype | NasBench201Genotype) -> dict:
    """JSON-ready form: edges as `[op, index]` lists, concats as lists; optional fields only where set."""
    return {
        field.name: [list(item) if isinstance(item, tuple) else item for item in getattr(genotype, field.name)]
        for field in fields(genotype)
        if getattr(genotype, field.name) is not None
    }


def _from_dict(cls, data: Mapping):
    if not isinstance(data, Mapping):
        raise TypeError(f"A {cls.__name__} is described by a JSON object, got {type(data).__name__}.")
    required = {field.name for field in fields(cls) if field.default is MISSING}
    allowed = {field.name for field in fields(cls)}
    missing, unknown = sorted(required - set(data)), sorted(set(data) - allowed)
    if missing or unknown:
        optional = f" (and may have {sorted(allowed - required)})" if allowed != required else ""
        raise ValueError(
            f"A {cls.__name__} needs the keys {sorted(required)}{optional}; missing {missing}, unknown {unknown}."
        )
    return cls(**data)


NASNet = Genotype(
    normal=next(iter(_PUBLISHED_REPEATED_EDGES)),
    normal_concat=(2, 3, 4, 5, 6),
    reduce=(
        ("sep_conv_5x5", 1),
        ("sep_conv_7x7", 0),
        ("max_pool_3x3", 1),
        ("sep_conv_7x7", 0),
        ("avg_pool_3x3", 1),
        ("sep_conv_5x5", 0),
        ("skip_connect", 3),
        ("avg_pool_3x3", 2),
        ("sep_conv_3x3", 2),
        ("max_pool_3x3", 1),
    ),
    reduce_concat=(4, 5, 6),
)

AmoebaNet = Genotype(
    normal=(
        ("avg_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_5x5", 2),
        ("sep_conv_3x3", 0),
        ("avg_pool_3x3", 3),
        ("sep_conv_3x3", 1),
        ("skip_connect", 1),
        ("skip_connect", 0),
        ("avg_pool_3x3", 1),
    ),
    normal_concat=(4, 5, 6),
    reduce=(
        ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 1),
        ("max_pool_3x3", 0),
        ("sep_conv_7x7", 2),
        ("sep_conv_7x7", 0),
        ("avg_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("conv_7x1_1x7", 0),
        ("sep_conv_3x3", 5),
    ),
    reduce_concat=(3, 4, 6),
)

# DARTS (first order), the paper's Fig. 4 search result.
DARTS_V1 = Genotype(
    normal=(
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("skip_connect", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("avg_pool_3x3", 0),
    ),
    reduce_concat=(2, 3, 4, 5),
)

# DARTS (second order), the cell of the released CIFAR-10 and ImageNet checkpoints (paper Fig. 4 and 5).
DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("skip_connect", 0),
        ("dil_conv_3x3", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)

# FairDARTS-a (Chu et al. 2020, Fig. 4; their genotypes.py): the threshold parse leaves normal node 1 (state 3)
# without edges, so the normal cell concatenates 3 nodes.
FAIRDARTS_A = Genotype(
    normal=(("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_3x3", 0)),
    normal_edges_per_node=(2, 0, 1, 1),
    normal_concat=(2, 4, 5),
    reduce=(
        ("max_pool_3x3", 0),
        ("avg_pool_3x3", 1),
        ("avg_pool_3x3", 0),
        ("dil_conv_5x5", 1),
        ("avg_pool_3x3", 0),
        ("sep_conv_5x5", 1),
        ("skip_connect", 0),
        ("skip_connect", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)

ENAS = RecurrentGenotype(
    recurrent=(
        ("tanh", 0),
        ("tanh", 1),
        ("relu", 1),
        ("tanh", 3),
        ("tanh", 3),
        ("relu", 3),
        ("relu", 4),
        ("relu", 7),
        ("relu", 8),
        ("relu", 8),
        ("relu", 8),
    ),
    concat=(2, 5, 6, 9, 10, 11),
)

RECURRENT_DARTS_V1 = RecurrentGenotype(
    recurrent=(
        ("relu", 0),
        ("relu", 1),
        ("tanh", 2),
        ("relu", 3),
        ("relu", 4),
        ("identity", 1),
        ("relu", 5),
        ("relu", 1),
    ),
    concat=tuple(range(1, 9)),
)

# The cell of the released Penn Treebank checkpoint (paper Fig. 6).
RECURRENT_DARTS_V2 = RecurrentGenotype(
    recurrent=(
        ("sigmoid", 0),
        ("relu", 1),
        ("relu", 1),
        ("identity", 1),
        ("tanh", 2),
        ("sigmoid", 5),
        ("tanh", 3),
        ("relu", 5),
    ),
    concat=tuple(range(1, 9)),
)

# The ResNet basic block as a NAS-Bench-201 cell (the benchmark's space holds it): node 1 = conv(x), node 2 =
# conv(node 1), output node 3 = x + node 2.
NAS_BENCH_201_RESNET = NasBench201Genotype.from_string(
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
)

CNN_GENOTYPES: dict[str, Genotype] = {
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "DARTS": DARTS_V2,
    "NASNet": NASNet,
    "AmoebaNet": AmoebaNet,
    "FairDARTS_A": FAIRDARTS_A,
}
RECURRENT_GENOTYPES: dict[str, RecurrentGenotype] = {
    "ENAS": ENAS,
    "DARTS_V1": RECURRENT_DARTS_V1,
    "DARTS_V2": RECURRENT_DARTS_V2,
    "DARTS": RECURRENT_DARTS_V2,
}


def get_genotype(name: str, recurrent: bool = False) -> Genotype | RecurrentGenotype:
    """Look up a genotype of the zoo by name (`"DARTS_V2"`, `"NASNet"`, ...)."""
    zoo = RECURRENT_GENOTYPES if recurrent else CNN_GENOTYPES
    if name not in zoo:
        kind = "recurrent" if recurrent else "convolutional"
        raise KeyError(f"Unknown {kind} genotype {name!r}; the zoo has: {', '.join(zoo)}.")
    return zoo[name]


def as_genotype(
    value: str | Mapping | Genotype | RecurrentGenotype, recurrent: bool = False
) -> Genotype | RecurrentGenotype:
    """Accept a zoo name, a JSON-like mapping or a genotype, and return the genotype."""
    cls = RecurrentGenotype if recurrent else Genotype
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        return get_genotype(value, recurrent=recurrent)
    if isinstance(value, Mapping):
        return cls.from_dict(value)
    raise TypeError(f"Expected a zoo name, a mapping or a {cls.__name__}, got {type(value).__name__}.")


def load_genotype(
    name_or_path: str | os.PathLike, recurrent: bool | None = None
) -> Genotype | RecurrentGenotype | NasBench201Genotype:
    """Resolve a genotype given as a zoo name, a NAS-Bench-201 string (`|op~0|+|op~0|op~1|+...`), a JSON file, or a
    folder (a search result or a saved model).

    A folder is read from its `genotype.json` if present, else from the `genotype` entry of its `config.json`. The
    kind (convolutional or recurrent) of a file or folder is read from its keys; a zoo name is looked up among the
    convolutional genotypes unless `recurrent=True`.
    """
    path = Path(name_or_path)
    if path.is_dir():
        if (path / "genotype.json").is_file():
            path = path / "genotype.json"
        elif (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
            if "genotype" not in config:
                raise ValueError(f"{path / 'config.json'} has no 'genotype' entry: it is not a DARTS model.")
            return _genotype_from_json_value(config["genotype"], recurrent)
        else:
            raise FileNotFoundError(f"{path} holds neither genotype.json nor config.json.")
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from error
        return _genotype_from_json_value(data, recurrent)
    if str(name_or_path).startswith("|"):
        return NasBench201Genotype.from_string(str(name_or_path))
    zoo = RECURRENT_GENOTYPES if recurrent else CNN_GENOTYPES
    if str(name_or_path) in zoo:
        return zoo[str(name_or_path)]
    raise FileNotFoundError(
        f"{str(name_or_path)!r} is neither a zoo genotype ({', '.join(zoo)}), nor a JSON file, nor a folder."
    )


def _genotype_from_json_value(data, recurrent: bool | None) -> Genotype | RecurrentGenotype | NasBench201Genotype:
    if isinstance(data, str) and data.startswith("|"):  # a NAS-Bench-201 config's cell
        return NasBench201Genotype.from_string(data)
    if isinstance(data, Mapping) and recurrent is None:
        return genotype_from_dict(data)
    return as_genotype(data, recurrent=bool(recurrent))


def genotype_from_dict(data: Mapping) -> Genotype | RecurrentGenotype | NasBench201Genotype:
    """The genotype of a `to_dict()` of any kind, told apart by its keys: `recurrent` (a recurrent cell), `nodes`
    (a NAS-Bench-201 cell) or `normal` and `reduce` (a DARTS cell pair)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"A genotype is described by a JSON object, got {type(data).__name__}.")
    if "recurrent" in data:
        return RecurrentGenotype.from_dict(data)
    if "nodes" in data:
        return NasBench201Genotype.from_dict(data)
    return Genotype.from_dict(data)


def _strongest_edges(weights: torch.Tensor, num_edges: int, candidates: Sequence[Sequence[str]]) -> list[Edge]:
    """The paper's discretisation (Sec. 2.4) for one node: rows of `weights` are its incoming edges, `candidates`
    the operations of each row's columns.

    Keep the `num_edges` edges whose strongest non-'none' operation weighs most, each labelled with that operation.
    Ties go to the lower input index.
    """
    rows = weights.tolist()
    best_ops = [
        max((k for k in range(len(row)) if names[k] != "none"), key=lambda k: (row[k], -k))
        for row, names in zip(rows, candidates)
    ]
    order = sorted(range(len(rows)), key=lambda j: -rows[j][best_ops[j]])[:num_edges]
    return [(candidates[j][best_ops[j]], j) for j in order]


class EmptyCellError(ValueError):
    """No edge of a cell reaches FairDARTS's threshold: the alphas encode no network (yet)."""


def derive_genotype(
    alphas_normal: torch.Tensor,
    alphas_reduce: torch.Tensor,
    num_nodes: int = 4,
    multiplier: int = 4,
    primitives: Sequence[str] = PRIMITIVES,
    edge_weights_normal: torch.Tensor | None = None,
    edge_weights_reduce: torch.Tensor | None = None,
    candidates: Mapping[str, Sequence[Sequence[str]]] | None = None,
    activation: str = "softmax",
    threshold: float | None = None,
) -> Genotype:
    """Turn the architecture weights of a convolutional supernet into a discrete cell.

    `alphas_*` are the un-normalised weights, shape `[num_edges, len(primitives)]` with the edges of node 0, then
    node 1, ... (node i has i + 2 incoming edges). Per node, the two strongest edges are kept; the output
    concatenates the last `multiplier` nodes. `edge_weights_*` (PC-DARTS's edge normalisation, `[num_edges]`) scale
    each edge's operation weights before the edges are ranked. `candidates` ({"normal": ..., "reduce": ...}, one
    list per edge) names the columns of each edge where they differ (RobustDARTS's S1); otherwise every edge's are
    `primitives`.

    FairDARTS (`activation="sigmoid"`, their "threshold_sparse" parse): the operation weights are the sigmoids of
    the alphas, and of a node's two strongest edges only those whose operation weighs at least `threshold` stay; a
    node left without edges is no state, and edges reading it go too. Raises `EmptyCellError` when a cell keeps
    no edge.
    """
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}.")
    num_edges = num_nodes * (num_nodes + 3) // 2
    concat_nodes = range(num_nodes - multiplier, num_nodes)

    def parse(alphas: torch.Tensor, cell: str, edge_weights: torch.Tensor | None) -> dict:
        names = candidates[cell] if candidates is not None else [primitives] * num_edges
        expected = (num_edges, len(names[0]))
        if tuple(alphas.shape) != expected:
            raise ValueError(f"alphas_{cell} has shape {tuple(alphas.shape)}; {num_nodes} nodes need {expected}.")
        alphas = alphas.detach().float().cpu()
        weights = torch.sigmoid(alphas) if activation == "sigmoid" else torch.softmax(alphas, dim=-1)
        ranked = weights if edge_weights is None else weights * edge_weights.detach().float().cpu()[:, None]
        edges, counts, is_state, start = [], [], [True, True], 0
        for node in range(num_nodes):
            rows = range(start, start + node + 2)
            kept = _strongest_edges(ranked[rows.start : rows.stop], 2, names[rows.start : rows.stop])
            if threshold is not None:
                kept = [
                    (op, j)
                    for op, j in kept
                    if is_state[j] and weights[start + j, list(names[start + j]).index(op)] >= threshold
                ]
            edges += kept
            counts.append(len(kept))
            is_state.append(bool(kept))
            start = rows.stop
        concat = tuple(node + 2 for node in concat_nodes if counts[node])
        if not concat:
            raise EmptyCellError(
                f"No operation of the {cell} cell reaches the threshold {threshold} (the largest sigmoid weight is "
                f"{weights.max():.3f}): search longer, or lower the threshold."
            )
        return {cell: edges, f"{cell}_concat": concat, f"{cell}_edges_per_node": counts}

    return Genotype(
        **parse(alphas_normal, "normal", edge_weights_normal), **parse(alphas_reduce, "reduce", edge_weights_reduce)
    )


def derive_nas_bench_201_genotype(
    alphas: torch.Tensor, num_nodes: int = 3, primitives: Sequence[str] = NAS_BENCH_201_OPERATIONS
) -> NasBench201Genotype:
    """NAS-Bench-201's discretisation (and AutoDL's code): every edge keeps its strongest operation, 'none' included
    (an edge may vanish). `alphas` has shape `[num_edges, len(primitives)]`, node i (from 1) owning i rows, one
    per earlier state. Any monotone relaxation of the alphas (softmax, Dirichlet mean) has the same argmax; ties
    go to the first column."""
    expected = (num_nodes * (num_nodes + 1) // 2, len(primitives))
    if tuple(alphas.shape) != expected:
        raise ValueError(f"alphas has shape {tuple(alphas.shape)}; {num_nodes} nodes need {expected}.")
    strongest = alphas.detach().float().cpu().argmax(-1).tolist()
    nodes, start = [], 0
    for node in range(1, num_nodes + 1):
        nodes.append([(primitives[strongest[start + index]], index) for index in range(node)])
        start += node
    return NasBench201Genotype(nodes)


def derive_recurrent_genotype(
    alphas: torch.Tensor, num_nodes: int = 8, primitives: Sequence[str] = RECURRENT_PRIMITIVES
) -> RecurrentGenotype:
    """Turn the architecture weights of a recurrent supernet into a discrete cell.

    `alphas` has shape `[num_edges, len(primitives)]`, node i (1-based) owning i rows. Per node the single strongest
    edge is kept; the output averages every node.
    """
    expected = (num_nodes * (num_nodes + 1) // 2, len(primitives))
    if tuple(alphas.shape) != expected:
        raise ValueError(f"alphas has shape {tuple(alphas.shape)}; {num_nodes} nodes need {expected}.")
    weights = torch.softmax(alphas.detach().float().cpu(), dim=-1)
    edges, start = [], 0
    for node in range(num_nodes):
        edges += _strongest_edges(weights[start : start + node + 1], 1, [primitives] * (node + 1))
        start += node + 1
    return RecurrentGenotype(recurrent=edges, concat=tuple(range(1, num_nodes + 1)))


__all__ = [
    "DARTS_V1",
    "DARTS_V2",
    "ENAS",
    "FAIRDARTS_A",
    "RECURRENT_DARTS_V1",
    "RECURRENT_DARTS_V2",
    "AmoebaNet",
    "NASNet",
    "CNN_GENOTYPES",
    "CNN_OPERATIONS",
    "EmptyCellError",
    "PARAMETER_FREE_OPERATIONS",
    "SEARCH_SPACES",
    "PRIMITIVES",
    "RECURRENT_GENOTYPES",
    "RECURRENT_OPERATIONS",
    "RECURRENT_PRIMITIVES",
    "Genotype",
    "NAS_BENCH_201_OPERATIONS",
    "NAS_BENCH_201_RESNET",
    "NasBench201Genotype",
    "RecurrentGenotype",
    "as_genotype",
    "derive_genotype",
    "derive_nas_bench_201_genotype",
    "derive_recurrent_genotype",
    "genotype_from_dict",
    "get_genotype",
    "load_genotype",
]
