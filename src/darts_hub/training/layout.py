"""The memory layout the scripts and the benchmark run in (a module of its own, light to import: the benchmark's
inference workload imports it without the training stack)."""

from __future__ import annotations

import torch


def use_channels_last(requested: bool | None, device: torch.device) -> bool:
    """The memory layout of images and convolution weights: as `requested`, else channels-last on the CPU (where
    oneDNN's convolutions are faster in it) and the default layout elsewhere. The scripts and the benchmark share this
    rule, so that the benchmark measures what users run."""
    return device.type == "cpu" if requested is None else requested


__all__ = ["use_channels_last"]
