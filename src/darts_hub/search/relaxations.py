"""What the relaxations of the supernet other than the softmax (`DartsSearchConfig.relaxation`) add to the search.

- `GumbelTemperature` (GDAS, Dong & Yang 2019): the temperature of the Gumbel-softmax, annealed linearly from
  `temperature_max` (10) at the first epoch to `temperature_min` (0.1) at the last, as GDAS's code does.
- `DirichletKL` (DrNAS, Chen et al. 2021, eq. 5): the architecture objective gains `scale` times the KL divergence of
  each edge's Dirichlet distribution (concentration `elu(alpha) + 1`) from the uniform Dirichlet (all ones), summed
  over the edges of both cells; it keeps the concentrations from growing without bound (their code's scale: 1e-3).
- `ZeroOneLoss` (FairDARTS, Chu et al. 2020, eq. 4): the architecture objective gains `-weight` times the mean of
  `(sigmoid(alpha) - 0.5)^2` over the alphas of both cells (their code's weight: 10). It is lowest when every
  sigmoid weight is 0 or 1, so that the threshold parse keeps what the supernet used and drops what it did not.
"""

from __future__ import annotations

import torch

from ..recipes import DRNAS, FAIRDARTS, GDAS


class GumbelTemperature:
    """GDAS's schedule: `set_epoch` before each epoch sets the supernet's `temperature`."""

    def __init__(
        self,
        supernet,
        epochs: int,
        temperature_max: float = GDAS["temperature_max"],
        temperature_min: float = GDAS["temperature_min"],
    ):
        self.supernet, self.epochs = supernet, epochs
        self.temperature_max, self.temperature_min = temperature_max, temperature_min

    def set_epoch(self, epoch: int) -> None:
        """The temperature of epoch `epoch` (from 0): `max - (max - min) * epoch / (epochs - 1)`."""
        progress = epoch / (self.epochs - 1) if self.epochs > 1 else 1.0
        self.supernet.temperature = self.temperature_max - (self.temperature_max - self.temperature_min) * progress


class DirichletKL:
    """DrNAS's KL term of the alphas of the normal and reduction cells, as an `Architect` penalty."""

    def __init__(self, scale: float = DRNAS["kl_scale"]):
        self.scale = scale

    def __call__(self, alphas: list[torch.Tensor]) -> torch.Tensor:
        concentration = torch.nn.functional.elu(torch.cat(alphas[:2])) + 1
        uniform = torch.distributions.Dirichlet(torch.ones_like(concentration))
        return (
            self.scale * torch.distributions.kl_divergence(torch.distributions.Dirichlet(concentration), uniform).sum()
        )


class ZeroOneLoss:
    """FairDARTS's zero-one loss of the alphas of the normal and reduction cells, as an `Architect` penalty."""

    def __init__(self, weight: float = FAIRDARTS["zero_one_weight"]):
        self.weight = weight

    def __call__(self, alphas: list[torch.Tensor]) -> torch.Tensor:
        weights = torch.sigmoid(torch.cat(alphas[:2]))
        return -self.weight * ((weights - 0.5) ** 2).mean()


__all__ = ["DirichletKL", "GumbelTemperature", "ZeroOneLoss"]
