"""The search plots: the entropy that summarises how settled the architecture is."""

import math

import pytest

from darts_hub.plots import normalised_entropy


def test_alpha_entropy_is_one_when_uniform_and_zero_when_settled():
    assert normalised_entropy([[0.25] * 4, [0.25] * 4]) == pytest.approx(1.0)
    assert normalised_entropy([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]) == 0.0
    half = [0.5, 0.5, 0.0, 0.0]  # two of four operations: log 2 / log 4
    assert normalised_entropy([half, [0.25] * 4]) == pytest.approx((math.log(2) / math.log(4) + 1) / 2)
