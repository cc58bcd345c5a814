"""The candidate operations of DARTS cells, as one registry: operation name -> constructor.

Every constructor takes `(channels, stride, affine)`; `affine=False` gives the parameter-free BatchNorm that the
search supernet uses (Sec. 2.1 of the paper), `affine=True` the trained networks' BatchNorm. Sub-modules keep the
original implementation's layout (`op.1.weight`, `conv_1.weight`, ...) so that original checkpoints map key by key.
These are the plain PyTorch layers; `darts_hub.kernels.kernelize` swaps in faster forms of the same computation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def depthwise_conv(channels: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1):
    """A depthwise convolution: one filter per channel (`groups` = channels), no bias."""
    return nn.Conv2d(
        channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=channels, bias=False
    )


class LayerSequence(nn.Module):
    """An operation made of `layers` applied in order, held as `self.op` (the original layout's `op.N` keys)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.op = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ReLUConvBN(LayerSequence):
    """ReLU -> convolution -> BatchNorm: the 1x1 preprocessing of cell inputs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels, affine=affine),
        )


class DilConv(LayerSequence):
    """ReLU -> dilated depthwise convolution -> pointwise convolution -> BatchNorm."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, dilation: int, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            depthwise_conv(channels, kernel_size, stride=stride, padding=padding, dilation=dilation),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )


class SepConv(LayerSequence):
    """A separable convolution applied twice (the NASNet convention): only the first one strides."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            depthwise_conv(channels, kernel_size, stride=stride, padding=padding),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels, affine=affine),
            nn.ReLU(inplace=False),
            depthwise_conv(channels, kernel_size, padding=padding),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two strided 1x1 convolutions, the second shifted by one pixel."""

    def __init__(self, in_channels: int, out_channels: int, affine=True):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {out_channels}.")
        self.relu = nn.ReLU(inplace=False)
        # The same convolutions, on every other pixel taken beforehand, where the strided ones cannot run: with 4 or
        # fewer input channels, the backward pass of a strided 1x1 convolution in the channels-last layout corrupts
        # memory on the CPU (torch 2.14; PC-DARTS's partial channels reach such sizes).
        self.subsample_first = in_channels <= 4
        stride = 1 if self.subsample_first else 2
        self.conv_1 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=stride, bias=False)
        self.conv_2 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, affine=affine)

    def halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs of the two convolutions: `x` and `x` shifted by one pixel (padded back to `x`'s size on odd
        sizes, so that both outputs line up), subsampled here where the convolutions do not stride."""
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        if self.subsample_first:
            return x[:, :, ::2, ::2], shifted[:, :, ::2, ::2]
        return x, shifted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, shifted = self.halves(self.relu(x))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _conv_7x1_1x7(channels: int, stride: int, affine: bool) -> nn.Sequential:
    """AmoebaNet's factorised 7x7 convolution (a Sequential, as in the original layout)."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(channels, channels, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(channels, affine=affine),
    )


class Noise(nn.Module):
    """RobustDARTS's `noise` candidate (search space S4): standard normal noise of the (strided) input's shape, in
    training and in evaluation, unrelated to the input. A cell that picks it has collapsed."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn_like(x[:, :, :: self.stride, :: self.stride])

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


OperationFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OperationFactory] = {
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, 5, stride, 2, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, 7, stride, 3, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, 5, stride, 4, 2, affine),
    "conv_7x1_1x7": _conv_7x1_1x7,
    "noise": lambda c, stride, affine: Noise(stride),
    # NAS-Bench-201's convolutions: ReLU -> convolution -> BatchNorm.
    "nor_conv_1x1": lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine),
    "nor_conv_3x3": lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine),
}


def build_operation(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """Build the operation `name` of the registry, with a message listing the known names otherwise."""
    if name not in OPS:
        raise KeyError(f"Unknown operation {name!r}; known operations: {', '.join(OPS)}.")
    return OPS[name](channels, stride, affine)


class DropPath(nn.Module):
    """Drop a whole path for some samples of the batch while training (FractalNet's drop-path, as in NASNet).

    Kept samples are scaled by 1 / (1 - p) so the expected value is unchanged. The probability is an attribute so a
    training loop can schedule it; the mask is drawn on the input's device and dtype.
    """

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob <= 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep_prob)
        return x * mask.div_(keep_prob)  # one full-size multiplication; the scaling is on the per-sample mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


__all__ = [
    "OPS",
    "DilConv",
    "DropPath",
    "FactorizedReduce",
    "LayerSequence",
    "Noise",
    "ReLUConvBN",
    "SepConv",
    "build_operation",
    "depthwise_conv",
]
