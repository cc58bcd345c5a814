"""Terms added to the architecture objective against DARTS's collapse.

- `BetaDecay` (beta-DARTS, Ye et al., 2022, eq. 9-10): the mean over the edges of the smooth maximum of the
  alphas, `log sum_k exp(alpha_k)`, weighted by `rate * epoch` (their code: 50 * epoch / 100). Its gradient is
  `softmax(alpha) / edges`: every alpha of an edge decays by its share, which keeps the alphas small and their
  softmax from saturating on one (parameter-free) operation early.
"""

from __future__ import annotations

import torch

from ..recipes import BETA_DECAY


class BetaDecay:
    """The beta-decay term of the alphas of the normal and reduction cells (not PC-DARTS's edge betas, which
    beta-DARTS does not regularise); `set_epoch` before each epoch sets its weight."""

    def __init__(self, rate: float = BETA_DECAY["rate"]):
        self.rate, self.weight = rate, 0.0

    def set_epoch(self, epoch: int) -> None:
        """The weight of epoch `epoch` (from 0): `rate * epoch`, growing linearly from zero."""
        self.weight = self.rate * epoch

    def __call__(self, alphas: list[torch.Tensor]) -> torch.Tensor:
        rows = torch.cat([alpha.reshape(-1, alpha.shape[-1]) for alpha in alphas[:2]])
        return self.weight * torch.logsumexp(rows, dim=-1).mean()


REGULARISERS = ("beta_decay",)

__all__ = ["REGULARISERS", "BetaDecay"]
