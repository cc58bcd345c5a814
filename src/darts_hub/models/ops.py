"""The candidate operations of DARTS cells, as one registry: operation name -> constructor.

Every constructor takes `(channels, stride, affine)`; `affine=False` gives the parameter-free BatchNorm that the
search supernet uses (Sec. 2.1 of the paper), `affine=True` the trained networks' BatchNorm. Sub-modules keep the
original implementation's layout (`op.1.weight`, `conv_1.weight`, ...) so that original checkpoints map key by key.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from .batch_norm import BatchNorm2d
from .depthwise import DepthwiseConv2d
from .pooling import AvgPool2d, MaxPool2d


def folded_batch_norm(batch_norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor] | None:
    """In evaluation with running statistics, BatchNorm is a fixed affine map per channel, `scale * x + shift`:
    (scale, shift), or None when it normalises with the batch's statistics (training, or no running statistics)."""
    if batch_norm.training or batch_norm.running_var is None:
        return None
    scale = (batch_norm.running_var + batch_norm.eps).rsqrt()
    if batch_norm.weight is not None:
        scale = scale * batch_norm.weight
    shift = -batch_norm.running_mean * scale
    if batch_norm.bias is not None:
        shift = shift + batch_norm.bias
    return scale, shift


def convolve_folded(conv: nn.Conv2d, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """`scale * conv(x) + shift` per output channel, as one convolution with scaled weights and a bias (through
    the module, so that its hooks still run)."""
    bias = shift if conv.bias is None else shift + scale * conv.bias
    return functional_call(conv, {"weight": conv.weight * scale.view(-1, 1, 1, 1), "bias": bias}, (x,))


def is_pointwise(layer: nn.Module | None) -> bool:
    """A 1x1 convolution without bias, stride, padding or groups: the second half of a separable convolution."""
    return (
        isinstance(layer, nn.Conv2d)
        and layer.kernel_size == (1, 1)
        and layer.stride == (1, 1)
        and layer.padding == (0, 0)
        and layer.groups == 1
        and layer.bias is None
    )


class FoldingSequential(nn.Sequential):
    """`nn.Sequential` (same layout and keys) that, in evaluation, runs each convolution followed by a BatchNorm as
    one convolution with the BatchNorm folded into its weights and bias: the same map (up to rounding) with one pass
    over the activations instead of two. In training on the CPU, it runs each depthwise convolution followed by a
    pointwise one as one separable convolution that keeps no activation between the two
    (`DepthwiseConv2d(x, pointwise=...)`; the pointwise convolution's own hooks do not run there): a search step
    keeps 40% less, in about the same time on the CPU, where fresh memory costs about what the recomputed depthwise
    convolution does (within the noise under tcmalloc, perhaps 5-10% slower under glibc's allocator; on a GPU, where
    memory is cached, the recomputation would only cost time). `start` skips the first layers (without building a
    slice of the sequence on every call)."""

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        layers = list(self)
        index = start
        while index < len(layers):
            layer, following = layers[index], layers[index + 1] if index + 1 < len(layers) else None
            folded = folded_batch_norm(following) if isinstance(following, nn.BatchNorm2d) else None
            if folded is not None and isinstance(layer, nn.Conv2d):
                x = convolve_folded(layer, x, *folded)
                index += 2
            elif (
                self.training
                and x.device.type == "cpu"
                and isinstance(layer, DepthwiseConv2d)
                and is_pointwise(following)
            ):
                x = layer(x, pointwise=following)
                index += 2
            else:
                x = layer(x)
                index += 1
        return x


class RectifyingOperation(nn.Module):
    """An operation that begins with a ReLU of its input (by default: its layers `self.op`, a ReLU first).

    A caller feeding one input to several such operations rectifies it once and passes `rectified=True`: the same
    result, with one ReLU (and, in training, one stored activation) instead of one per operation.
    """

    def forward(self, x: torch.Tensor, rectified: bool = False) -> torch.Tensor:
        return self.op(x, start=1 if rectified else 0)


class ReLUConvBN(RectifyingOperation):
    """ReLU -> convolution -> BatchNorm: the 1x1 preprocessing of cell inputs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, affine=True):
        super().__init__()
        self.op = FoldingSequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
            BatchNorm2d(out_channels, affine=affine),
        )


class DilConv(RectifyingOperation):
    """ReLU -> dilated depthwise convolution -> pointwise convolution -> BatchNorm."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, dilation: int, affine=True):
        super().__init__()
        self.op = FoldingSequential(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(channels, kernel_size, stride=stride, padding=padding, dilation=dilation),
            nn.Conv2d(channels, channels, 1, bias=False),
            BatchNorm2d(channels, affine=affine),
        )


class SepConv(RectifyingOperation):
    """A separable convolution applied twice (the NASNet convention): only the first one strides."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, affine=True):
        super().__init__()
        # The second ReLU keeps no activation of its own in training. With an affine map BatchNorm keeps its input,
        # and the ReLU runs in place on its output; without one (the search) BatchNorm keeps its output
        # (`BatchNormalization`), which the second depthwise convolution rectifies itself, keeping it too.
        self.op = FoldingSequential(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(channels, kernel_size, stride=stride, padding=padding),
            nn.Conv2d(channels, channels, 1, bias=False),
            BatchNorm2d(channels, affine=affine),
            nn.ReLU(inplace=True) if affine else nn.Identity(),
            DepthwiseConv2d(channels, kernel_size, padding=padding, rectifies_input=not affine),
            nn.Conv2d(channels, channels, 1, bias=False),
            BatchNorm2d(channels, affine=affine),
        )


class FactorizedReduce(RectifyingOperation):
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
        self.bn = BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor, rectified: bool = False) -> torch.Tensor:
        if not rectified:
            x = self.relu(x)
        # On odd sizes the shifted branch is one pixel smaller; pad it back so both halves line up.
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        if self.subsample_first:
            x, shifted = x[:, :, ::2, ::2], shifted[:, :, ::2, ::2]
        folded = folded_batch_norm(self.bn)
        if folded is None:
            return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))
        halves = zip((self.conv_1, self.conv_2), (x, shifted), *(part.chunk(2) for part in folded))
        return torch.cat([convolve_folded(conv, half, scale, shift) for conv, half, scale, shift in halves], dim=1)


def _conv_7x1_1x7(channels: int, stride: int, affine: bool) -> nn.Sequential:
    """AmoebaNet's factorised 7x7 convolution (a Sequential, as in the original layout)."""
    return FoldingSequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(channels, channels, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        BatchNorm2d(channels, affine=affine),
    )


OperationFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OperationFactory] = {
    "max_pool_3x3": lambda c, stride, affine: MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, affine: AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, 5, stride, 2, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, 7, stride, 3, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, 5, stride, 4, 2, affine),
    "conv_7x1_1x7": _conv_7x1_1x7,
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
    "FoldingSequential",
    "ReLUConvBN",
    "RectifyingOperation",
    "SepConv",
    "build_operation",
    "folded_batch_norm",
]
