"""The curvature RobustDARTS monitors (Zela et al., 2020, Sec. 4): the largest eigenvalue of the Hessian of the
validation loss with respect to the alphas. It rises when a search is about to collapse onto parameter-free
operations, and the early-stopping rules in `early_stopping.py` read it.

The eigenvalue comes from power iteration on Hessian-vector products (`Architect.validation_hessian_product`), so
the Hessian (alphas x alphas) is never formed. The start vector comes from a generator of its own: measuring never
moves the search's random stream, and a search with the monitor finds what the same search without it finds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from .architect import Architect


def dominant_eigenvalue(
    product: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    like: list[torch.Tensor],
    iterations: int = 20,
    tolerance: float = 1e-3,
    seed: int = 0,
) -> float:
    """The eigenvalue of largest magnitude (with its sign) of the symmetric operator `product`, which maps a vector
    shaped as the tensors `like` to one of the same shapes: power iteration from a seeded random vector, until the
    Rayleigh quotient moves by less than `tolerance` (relative) or after `iterations` products."""
    generator = torch.Generator().manual_seed(seed)
    vector = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.device, t.dtype) for t in like]
    eigenvalue = None
    for _ in range(iterations):
        norm = torch.sqrt(sum((v.double() ** 2).sum() for v in vector))
        vector = [v / norm for v in vector]
        image = product(vector)
        previous, eigenvalue = eigenvalue, float(sum((v.double() * h.double()).sum() for v, h in zip(vector, image)))
        vector = image
        if previous is not None and abs(eigenvalue - previous) <= tolerance * abs(eigenvalue):
            break
    return eigenvalue


def largest_eigenvalue(
    product: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    like: list[torch.Tensor],
    iterations: int = 20,
    tolerance: float = 1e-3,
    seed: int = 0,
) -> float:
    """The largest (algebraic) eigenvalue of the symmetric operator `product`, the one RobustDARTS reports (the
    maximum of `eigvals` of the full Hessian in their code). Power iteration finds the eigenvalue of largest
    magnitude; when that one is negative, the operator shifted by it, `product(v) - dominant * v`, has only eigenvalues
    >= 0 and its dominant one is `largest - dominant`, which a second power iteration finds."""
    dominant = dominant_eigenvalue(product, like, iterations, tolerance, seed)
    if dominant >= 0:
        return dominant

    def shifted(vector: list[torch.Tensor]) -> list[torch.Tensor]:
        return [h - dominant * v for v, h in zip(vector, product(vector))]

    return dominant + dominant_eigenvalue(shifted, like, iterations, tolerance, seed)


def validation_hessian_eigenvalue(architect: Architect, batch: Mapping, iterations: int = 20) -> float:
    """The largest eigenvalue of the Hessian of the loss on `batch` with respect to the alphas of the architect's
    supernet, at its current weights."""
    alphas = architect.model.arch_parameters()
    return largest_eigenvalue(architect.validation_hessian_product(batch), list(alphas), iterations)


__all__ = ["dominant_eigenvalue", "largest_eigenvalue", "validation_hessian_eigenvalue"]
