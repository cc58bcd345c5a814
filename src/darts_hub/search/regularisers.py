"""What the search adds to DARTS against its collapse, one per `--regulariser`.

- `BetaDecay` (beta-DARTS, Ye et al., 2022, eq. 9-10): the mean over the edges of the smooth maximum of the
  alphas, `log sum_k exp(alpha_k)`, weighted by `rate * epoch` (their code: 50 * epoch / 100). Its gradient is
  `softmax(alpha) / edges`: every alpha of an edge decays by its share, which keeps the alphas small and their
  softmax from saturating on one (parameter-free) operation early.
- `RandomSmoothing` (SDARTS-RS, Chen & Hsieh, 2020, Alg. 1): the weight step mixes the operations with the softmax
  of the alphas plus uniform noise in [-epsilon, epsilon] (epsilon from 0.03 growing linearly to 0.3 over the
  search), each edge's weights clipped to [0, 1] and renormalised. Trained to work under perturbed architectures,
  the supernet's loss is flatter in the alphas, which is what RobustDARTS's eigenvalue measures.
- `AuxiliarySkipDecay` (DARTS-, Chu et al., 2021, Sec. 3.2): every edge of the supernet (built with
  `auxiliary_skip`) adds its input, weighted by 1 at the first epoch decaying linearly to 0 (their code:
  `(epochs - epoch) / epochs`), outside the softmax. The residual path the skip connections offer is always there,
  so the skip candidates no longer win the softmax for it.
"""

from __future__ import annotations

import torch

from ..recipes import AUXILIARY_SKIP, BETA_DECAY, RANDOM_SMOOTHING


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


class RandomSmoothing:
    """SDARTS-RS's perturbation of the mixing weights of the weight step; `set_epoch` before each epoch sets its
    radius. The noise is drawn from the global generator (seeded by `--seed`, checkpointed with the run)."""

    def __init__(self, epochs: int, epsilon: float = RANDOM_SMOOTHING["epsilon"], start=RANDOM_SMOOTHING["start"]):
        self.epochs, self.final, self.start = epochs, epsilon, start
        self.epsilon = start

    def set_epoch(self, epoch: int) -> None:
        """The radius of epoch `epoch` (from 0): from `start` linearly towards `epsilon` (their code)."""
        self.epsilon = self.start + (self.final - self.start) * epoch / self.epochs

    def __call__(self, mixing_weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {cell: self.perturb(weights) for cell, weights in mixing_weights.items()}

    def perturb(self, weights: torch.Tensor) -> torch.Tensor:
        """Each row (edge) of `weights` plus U(-epsilon, epsilon) noise, clipped to [0, 1] and divided by its sum; a
        row clipped to all zeros becomes one-hot at its largest perturbed weight."""
        noisy = weights + (torch.rand_like(weights) * 2 - 1) * self.epsilon
        clipped = noisy.clamp(0, 1)
        empty = clipped.sum(-1, keepdim=True) == 0
        one_hot = torch.nn.functional.one_hot(noisy.argmax(-1), weights.shape[-1]).to(weights.dtype)
        clipped = torch.where(empty, one_hot, clipped)
        return clipped / clipped.sum(-1, keepdim=True)


class AuxiliarySkipDecay:
    """DARTS-'s schedule: `set_epoch` before each epoch sets the supernet's `auxiliary_skip_weight`."""

    def __init__(self, supernet, epochs: int, initial_weight: float = AUXILIARY_SKIP["initial_weight"]):
        if not supernet.config.auxiliary_skip:
            raise ValueError("AuxiliarySkipDecay needs a supernet built with auxiliary_skip=True.")
        self.supernet, self.epochs, self.initial_weight = supernet, epochs, initial_weight

    def set_epoch(self, epoch: int) -> None:
        """The weight of epoch `epoch` (from 0): `initial_weight * (epochs - epoch) / epochs`."""
        self.supernet.auxiliary_skip_weight = self.initial_weight * (self.epochs - epoch) / self.epochs


REGULARISERS = ("auxiliary_skip", "beta_decay", "random_smoothing")

__all__ = ["REGULARISERS", "AuxiliarySkipDecay", "BetaDecay", "RandomSmoothing"]
