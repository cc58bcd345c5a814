"""The early-stopping rules against their definitions worked by hand: RobustDARTS's local-average rule on the
eigenvalue, DARTS+'s count of skip connections, and the parsing of `--early_stopping`."""

import dataclasses

import pytest

from darts_hub.models.genotypes import get_genotype
from darts_hub.search.early_stopping import EigenvalueRule, SkipConnectionRule, early_stopping_rule


# DARTS_V2 with a 3x3 separable convolution on every edge of both cells.
ALL_SEPARABLE = dataclasses.replace(
    get_genotype("DARTS_V2"),
    normal=[("sep_conv_3x3", index) for _, index in get_genotype("DARTS_V2").normal],
    reduce=[("sep_conv_3x3", index) for _, index in get_genotype("DARTS_V2").reduce],
)


def history_of(eigenvalues, every=1):
    """Epoch records measured every `every` epochs with these eigenvalues (genotype: no skip connection)."""
    records = []
    for index in range(len(eigenvalues) * every):
        epoch = index + 1
        record = {"epoch": epoch, "genotype": ALL_SEPARABLE.to_dict()}
        if epoch % every == 0:
            record["hessian_eigenvalue"] = eigenvalues[epoch // every - 1]
        records.append(record)
    return records


def test_the_eigenvalue_rule_compares_centred_local_averages_lag_measurements_apart():
    rule = EigenvalueRule(window=3, factor=1.3, lag=2, start_epoch=2)
    flat_then_rising = [1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 2.0]
    # Windows of 3: averages 1, 1, 1, 1.1667, 1.5 centred on epochs 2..6. At epoch 6 the newest (1.1667, epoch 5)
    # against the one 2 before (1, epoch 3): 1.17x, no stop; at epoch 7: 1.5 (epoch 6) against 1 (epoch 4): stop.
    assert rule.local_averages(history_of(flat_then_rising))[-1] == (6, pytest.approx(1.5))
    assert rule.stop(history_of(flat_then_rising[:6])) is None
    stop = rule.stop(history_of(flat_then_rising))
    assert (stop.epoch, stop.rule) == (4, "eigenvalue") and "1.50x" in stop.reason and "epoch 4" in stop.reason


def test_the_eigenvalue_rule_waits_for_its_start_epoch_and_reads_measured_epochs_only():
    rising = [1.0, 1.0, 2.0, 4.0, 8.0]
    assert EigenvalueRule(window=1, factor=1.3, lag=1, start_epoch=1).stop(history_of(rising)).epoch == 4
    # Measured every 2 epochs: the same values at epochs 2, 4, ..., 10; the earlier average is at epoch 8.
    assert EigenvalueRule(window=1, factor=1.3, lag=1, start_epoch=1).stop(history_of(rising, every=2)).epoch == 8
    assert EigenvalueRule(window=1, factor=1.3, lag=1, start_epoch=9).stop(history_of(rising)) is None
    assert EigenvalueRule(window=1, factor=2.5, lag=1, start_epoch=1).stop(history_of(rising)) is None
    # The paper's defaults: 5 measurements, 1.3x over 4 averages, not before epoch 10.
    assert EigenvalueRule() == EigenvalueRule(window=5, factor=1.3, lag=4, start_epoch=10)


def test_the_skip_connection_rule_stops_at_the_first_cell_with_k_skips():
    history = history_of([1.0] * 3)
    two_skips = [("skip_connect", 0), ("skip_connect", 1), *ALL_SEPARABLE.normal[2:]]
    history[2]["genotype"] = dataclasses.replace(ALL_SEPARABLE, normal=two_skips).to_dict()
    assert SkipConnectionRule(3).stop(history) is None
    stop = SkipConnectionRule(2).stop(history)
    assert (stop.epoch, stop.rule) == (3, "skip_connections") and "2 skip connections" in stop.reason
    assert SkipConnectionRule(2).stop(history[:2]) is None
    history[2]["genotype"]["reduce"] = history[2]["genotype"]["normal"]  # the reduction cell's skips do not count
    history[2]["genotype"]["normal"] = ALL_SEPARABLE.to_dict()["normal"]
    assert SkipConnectionRule(2).stop(history) is None
    history[2]["genotype"] = None  # no cell yet (FairDARTS's threshold kept no operation)
    assert SkipConnectionRule(1).stop(history) is None


def test_early_stopping_flags_are_parsed_or_refused():
    assert early_stopping_rule(None, 5, 1.3) is None
    assert early_stopping_rule(["eigenvalue"], 3, 1.5) == EigenvalueRule(window=3, factor=1.5)
    assert early_stopping_rule(["skip_connections", "2"], 5, 1.3) == SkipConnectionRule(2)
    for bad in (["skip_connections"], ["skip_connections", "0"], ["skip_connections", "two"], ["loss"]):
        with pytest.raises(ValueError, match="--early_stopping takes `eigenvalue` or `skip_connections K`"):
            early_stopping_rule(bad, 5, 1.3)
