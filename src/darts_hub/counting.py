"""Parameter and mult-add counts, in the original implementation's conventions (so figures compare with the paper).

- Parameters: every parameter whose name does not contain "auxiliary" (the auxiliary head is dropped after
  training) and that is not an architecture weight of a search supernet.
- Mult-adds: convolutions and linear layers only, kernel volume times output elements, for one image in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from .models import DartsConfig, DartsForImageClassification
from .models.genotypes import load_genotype


def count_parameters(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Number of trainable weights, counting shared (tied) tensors once."""
    seen, total = set(), 0
    for name, parameter in model.named_parameters():
        if (not include_auxiliary and "auxiliary" in name) or "alphas" in name or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
    return total


@torch.no_grad()
def count_mult_adds(model: nn.Module, image_size: int | None = None) -> int:
    """Multiply-accumulate operations of convolutions and linear layers for one image of `image_size` pixels a side.

    The image size and number of channels default to the model's config.
    """
    config = model.config
    image_size = image_size or config.image_size
    parameter = next(model.parameters())
    pixels = parameter.new_zeros(1, config.num_channels, image_size, image_size)
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel_volume = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += kernel_volume * output.numel()
        else:
            total += module.in_features * output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        model(pixels)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def summarize(
    model_name_or_path: str | None = None,
    genotype: str = "DARTS_V2",
    stem: str = "cifar",
    init_channels: int = 36,
    num_cells: int = 20,
    num_labels: int = 10,
    image_size: int | None = None,
) -> dict:
    """Counts of a saved model (its config alone is read) or of a network built from the given sizes."""
    if model_name_or_path is not None:
        config = DartsConfig.from_pretrained(model_name_or_path)
    else:
        config = DartsConfig(
            genotype=load_genotype(genotype),
            stem=stem,
            init_channels=init_channels,
            num_cells=num_cells,
            num_labels=num_labels,
            image_size=image_size,
        )
    model = DartsForImageClassification(config)
    return {
        "genotype": config.genotype,
        "stem": config.stem,
        "init_channels": config.init_channels,
        "num_cells": config.num_cells,
        "num_labels": config.num_labels,
        "image_size": config.image_size,
        "parameters": count_parameters(model),
        "parameters_with_auxiliary": count_parameters(model, include_auxiliary=True),
        "mult_adds": count_mult_adds(model),
    }


__all__ = ["count_mult_adds", "count_parameters", "summarize"]
