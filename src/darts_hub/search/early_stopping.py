"""Stopping a search before it collapses, two published rules that read the search's history (its epoch records,
`search_images.epoch_record`), so that a resumed search decides as the uninterrupted one would.

- `EigenvalueRule` (RobustDARTS, "DARTS-ES", Zela et al., 2020, Sec. 4.3): the largest eigenvalue of the validation
  loss's Hessian with respect to the alphas (`hessian.py`), averaged over a window of measurements, centred. The
  search stops when the newest local average exceeds the one `lag` measurements earlier by more than `factor`, and
  keeps the genotype of the epoch that earlier average is centred on: the cell from before the rise.
- `SkipConnectionRule` (DARTS+, Liang et al., 2019, Sec. 3.2): the search stops as soon as the normal cell holds
  `max_skips` skip connections, and keeps that cell.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from ..models.genotypes import genotype_from_dict
from ..recipes import EIGENVALUE_EARLY_STOPPING


EIGENVALUE_KEY = "hessian_eigenvalue"


@dataclass(frozen=True)
class Stop:
    """Where a search stopped: the epoch whose genotype is the result (from 1, as in the epoch records), the rule,
    and why, in words."""

    epoch: int
    rule: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EigenvalueRule:
    """RobustDARTS's rule (see the module docstring); the defaults are its code's (`recipes.EIGENVALUE_EARLY_STOPPING`):
    windows of 5 measurements, a rise by 1.3x over 4 local averages, never a stop before epoch 10."""

    window: int = EIGENVALUE_EARLY_STOPPING["window"]
    factor: float = EIGENVALUE_EARLY_STOPPING["factor"]
    lag: int = EIGENVALUE_EARLY_STOPPING["lag"]
    start_epoch: int = EIGENVALUE_EARLY_STOPPING["start_epoch"]

    def local_averages(self, history: list[dict]) -> list[tuple[int, float]]:
        """(epoch, mean) of every full window of `window` consecutive measurements, the epoch being that of the
        window's middle measurement."""
        measured = [(record["epoch"], record[EIGENVALUE_KEY]) for record in history if EIGENVALUE_KEY in record]
        return [
            (
                measured[end - self.window // 2][0],
                statistics.fmean(value for _, value in measured[end - self.window + 1 : end + 1]),
            )
            for end in range(self.window - 1, len(measured))
        ]

    def stop(self, history: list[dict]) -> Stop | None:
        averages = self.local_averages(history)
        if len(averages) <= self.lag:
            return None
        (earlier_epoch, earlier), (newest_epoch, newest) = averages[-1 - self.lag], averages[-1]
        if earlier_epoch < self.start_epoch or earlier <= 0 or newest / earlier <= self.factor:
            return None
        return Stop(
            earlier_epoch,
            "eigenvalue",
            f"the local average of the Hessian's largest eigenvalue rose {newest / earlier:.2f}x, from {earlier:.4g} "
            f"(epoch {earlier_epoch}) to {newest:.4g} (epoch {newest_epoch}), more than --early_stopping_factor "
            f"{self.factor}: the genotype of epoch {earlier_epoch} is kept",
        )


@dataclass(frozen=True)
class SkipConnectionRule:
    """DARTS+'s rule: stop once the normal cell (NAS-Bench-201's one cell) holds `max_skips` skip connections (the
    paper: 2)."""

    max_skips: int

    def stop(self, history: list[dict]) -> Stop | None:
        if not history:
            return None
        newest = history[-1]
        if newest["genotype"] is None:  # no cell yet
            return None
        genotype = genotype_from_dict(newest["genotype"])
        skips = genotype.operations().count("skip_connect")
        if skips < self.max_skips:
            return None
        return Stop(
            newest["epoch"],
            "skip_connections",
            f"the {genotype.watched_cell} of epoch {newest['epoch']} holds {skips} skip connections (--early_stopping "
            f"skip_connections {self.max_skips}): its genotype is kept",
        )


def early_stopping_rule(
    spec: list[str] | None, window: int, factor: float
) -> EigenvalueRule | SkipConnectionRule | None:
    """The rule `--early_stopping` names: `eigenvalue` (with `window`, `factor`) or `skip_connections K`; None for
    none. A malformed spec raises ValueError saying what is accepted."""
    if not spec:
        return None
    if spec == ["eigenvalue"]:
        return EigenvalueRule(window=window, factor=factor)
    if len(spec) == 2 and spec[0] == "skip_connections" and spec[1].isdigit() and int(spec[1]) > 0:
        return SkipConnectionRule(int(spec[1]))
    raise ValueError(
        f"--early_stopping takes `eigenvalue` or `skip_connections K` (K a positive count), got {' '.join(spec)!r}."
    )


def stop_of(history: list[dict]) -> Stop | None:
    """The stop a search's history records (a resumed search that had stopped searches no further)."""
    stopped = [record["stopped"] for record in history if "stopped" in record]
    return Stop(**stopped[-1]) if stopped else None


__all__ = ["EIGENVALUE_KEY", "EigenvalueRule", "SkipConnectionRule", "Stop", "early_stopping_rule", "stop_of"]
