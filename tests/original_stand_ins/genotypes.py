"""Stand-in named like the original genotypes.Genotype (see model.py)."""

from collections import namedtuple


Genotype = namedtuple("Genotype", "recurrent concat")
DARTS_V2 = Genotype(
    recurrent=[
        ("sigmoid", 0),
        ("relu", 1),
        ("relu", 1),
        ("identity", 1),
        ("tanh", 2),
        ("sigmoid", 5),
        ("tanh", 3),
        ("relu", 5),
    ],
    concat=range(1, 9),
)
