"""One step of Alg. 1 and the two optimizers of a search: shared by the convolutional and the recurrent search, and
timed as they run them by the benchmark."""

from __future__ import annotations

import torch

from .architect import Architect


def search_optimizers(
    supernet,
    learning_rate: float,
    weight_decay: float,
    arch_learning_rate: float,
    arch_weight_decay: float,
    momentum: float = 0.0,
    arch_betas: tuple[float, float] = (0.9, 0.999),
) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    """The two optimizers of a search (convolutional or recurrent): SGD for the operation weights, Adam for the
    alphas."""
    weight_optimizer = torch.optim.SGD(
        supernet.weight_parameters(), learning_rate, momentum=momentum, weight_decay=weight_decay
    )
    arch_optimizer = torch.optim.Adam(
        supernet.arch_parameters(), lr=arch_learning_rate, betas=arch_betas, weight_decay=arch_weight_decay
    )
    return weight_optimizer, arch_optimizer


class SearchStep:
    """One step of Alg. 1, `step(train_batch, valid_batch)`: the architecture step on a validation batch, then the
    weight step on a training batch (`model`, the prepared supernet, with `weight_optimizer`; gradients clipped to
    `grad_clip`), whose loss gains `regulariser(outputs)` if given (the recurrent search's activation
    regularisation, which the architecture step does not see, as in the original) and which mixes the operations
    with `perturb(supernet.mixing_weights())` if given (SDARTS-RS). Returns the model outputs of the weight step and
    of the architecture step's validation pass."""

    def __init__(
        self,
        model,
        architect: Architect,
        weight_optimizer,
        accelerator,
        grad_clip: float,
        regulariser=None,
        perturb=None,
    ):
        self.model, self.architect, self.weight_optimizer = model, architect, weight_optimizer
        self.accelerator, self.grad_clip, self.regulariser, self.perturb = accelerator, grad_clip, regulariser, perturb
        self.weight_parameters = architect.model.weight_parameters()

    def __call__(self, train_batch: dict, valid_batch: dict):
        accelerator, regulariser = self.accelerator, self.regulariser
        validation_outputs = self.architect.step(train_batch, valid_batch, self.weight_optimizer)
        # The weight step takes the architecture as given: no alpha gradients are computed (nor their inputs kept).
        alphas = self.architect.model.arch_parameters()
        for alpha in alphas:
            alpha.requires_grad_(False)
        try:
            mixing = (
                {} if self.perturb is None else {"mixing_weights": self.perturb(self.architect.model.mixing_weights())}
            )
            with accelerator.autocast():
                outputs = self.model(**train_batch, **mixing)
            accelerator.backward(outputs.loss if regulariser is None else outputs.loss + regulariser(outputs))
        finally:
            for alpha in alphas:
                alpha.requires_grad_(True)
        accelerator.clip_grad_norm_(self.weight_parameters, self.grad_clip)
        self.weight_optimizer.step()
        self.weight_optimizer.zero_grad(set_to_none=True)
        return outputs, validation_outputs


__all__ = ["SearchStep", "search_optimizers"]
