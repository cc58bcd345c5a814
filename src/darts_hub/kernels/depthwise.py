"""Depthwise convolutions whose backward pass is fast on the CPU.

oneDNN, PyTorch's CPU convolution library, computes the weight gradient of 5x5 and dilated depthwise filters 10-30
times slower than their forward pass, and the input gradient of strided dilated ones 50-100 times slower: in a DARTS
search step those backward passes took 38% of the time (batch 64, Intel Xeon), where the forward passes took 5%.
`DepthwiseConv2d` is an `nn.Conv2d` (the same parameter, the same state dict) whose backward pass, for such filters on
CPU tensors, computes the weight gradient (and a strided input gradient) with a small C++ kernel,
`depthwise_backward.cpp`, and a stride-1 input gradient as the forward convolution of the gradient with the flipped
filter. The same mathematics (tested against PyTorch's gradients). The kernel is compiled the first time it is needed
on a machine (`build.py`); where it cannot be built (no C++ compiler), and for double backward (`--hessian
exact`), PyTorch's own backward runs.
"""

from __future__ import annotations

import torch
from torch import nn

from .build import load_kernels


def depthwise_kernels():
    """The compiled kernel module (built once per machine), or None where it cannot be built."""
    return load_kernels("depthwise_backward")


class DepthwiseConvolution(torch.autograd.Function):
    """A depthwise convolution (`groups` = channels, no bias) with the fast backward pass; with `rectify`, of the
    input's ReLU, keeping the input rather than the ReLU's output (recomputed in the backward pass).

    With `pointwise_weight`, also the pointwise (1x1) convolution that follows it in a separable convolution,
    keeping only the depthwise convolution's input: its output, the pointwise convolution's input, is recomputed in
    the backward pass (a depthwise convolution: a few multiply-adds per value) instead of being kept from the
    forward pass to the backward. In a search step those outputs were 40% of the activations kept."""

    @staticmethod
    def forward(
        ctx, x, weight, pointwise_weight, stride: int, padding: int, dilation: int, fast: bool, rectify: bool
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight, pointwise_weight)
        ctx.geometry, ctx.fast, ctx.rectify = (stride, padding, dilation), fast, rectify
        output = _depthwise(nn.functional.relu(x) if rectify else x, weight, ctx.geometry)
        return output if pointwise_weight is None else nn.functional.conv2d(output, pointwise_weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, pointwise_weight = ctx.saved_tensors
        need_input, need_weight, need_pointwise = ctx.needs_input_grad[:3]
        # Only the filters' gradients read the convolutions' inputs; the input gradients read their shapes alone. A
        # pass that differentiates the alphas only (the architecture step's) needs no filter gradient: there neither
        # the ReLU nor the middle activation is recomputed. A differentiated backward pass recomputes both.
        differentiated = torch.is_grad_enabled()
        reads_inputs = need_weight or need_pointwise or differentiated
        inputs = nn.functional.relu(x) if ctx.rectify and reads_inputs else x  # once, for both convolutions
        pointwise_grad = None
        if pointwise_weight is not None:
            out_channels, in_channels = pointwise_weight.shape[:2]
            if need_pointwise or differentiated or in_channels != out_channels:
                # Recomputed, not kept. (With other channels than the gradient's and no filter gradient, only for
                # its shape: `inputs` may then be unrectified, and nothing reads the values.)
                middle = _depthwise(inputs, weight, ctx.geometry)
            else:
                middle = grad  # the middle's shape, all that is read of it
            grad, pointwise_grad, _ = torch.ops.aten.convolution_backward(
                grad, middle, pointwise_weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                [need_input or need_weight, need_pointwise, False],
            )  # fmt: skip
            del middle
        input_grad = weight_grad = None
        if need_input or need_weight:
            stride, padding, dilation = ctx.geometry
            if differentiated or not ctx.fast:  # differentiable (create_graph), or 3x3: PyTorch's own
                input_grad, weight_grad, _ = torch.ops.aten.convolution_backward(
                    grad, inputs, weight, None, [stride] * 2, [padding] * 2, [dilation] * 2, False, [0, 0],
                    x.shape[1], [need_input, need_weight, False],
                )  # fmt: skip
            else:
                input_grad, weight_grad = _fast_backward(grad, inputs, weight, need_input, need_weight, ctx.geometry)
        if ctx.rectify and input_grad is not None:
            input_grad = torch.ops.aten.threshold_backward(input_grad, x, 0)  # ReLU's backward: zero where x <= 0
        return input_grad, weight_grad, pointwise_grad, None, None, None, None, None


def _depthwise(inputs: torch.Tensor, weight: torch.Tensor, geometry: tuple[int, int, int]) -> torch.Tensor:
    stride, padding, dilation = geometry
    return nn.functional.conv2d(inputs, weight, None, stride, padding, dilation, groups=inputs.shape[1])


def _fast_backward(grad, x, weight, need_input: bool, need_weight: bool, geometry: tuple[int, int, int]):
    """The kernel's weight gradient (and strided input gradient); a stride-1 input gradient as a forward pass."""
    stride, padding, dilation = geometry
    flipped_forward = need_input and stride == 1
    input_grad, weight_grad = depthwise_kernels().depthwise_backward(
        grad, x, weight, stride, padding, dilation, need_input and not flipped_forward, need_weight
    )
    if flipped_forward:
        # The input gradient of a stride-1 convolution is the convolution of the gradient with the filter turned by
        # 180 degrees: a forward pass, which oneDNN runs fast.
        reach = dilation * (weight.shape[-1] - 1)
        input_grad = nn.functional.conv2d(
            grad, weight.flip(-1, -2), None, 1, reach - padding, dilation, groups=x.shape[1]
        )
    return input_grad, weight_grad


class DepthwiseConv2d(nn.Conv2d):
    """`nn.Conv2d(channels, channels, kernel_size, stride, padding, dilation, groups=channels, bias=False)` with the
    fast CPU backward pass for filters larger than 3x3 or dilated (oneDNN's own is fast for 3x3 ones).

    With `rectifies_input` it convolves the ReLU of its input, and in training keeps the input instead of the
    ReLU's output: where the input is kept anyway (the output of an affine-free BatchNorm, which keeps its output),
    one activation less. The search's separable convolutions use it for their second ReLU."""

    def __init__(
        self, channels: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
        rectifies_input: bool = False,
    ):  # fmt: skip
        super().__init__(
            channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=channels,
            bias=False,
        )  # fmt: skip
        self.rectifies_input = rectifies_input
        self.adopt()

    def adopt(self) -> None:
        """Set what the fast path reads, on a convolution that was an `nn.Conv2d` until `kernelize`."""
        self.fast_backward = self.kernel_size[0] > 3 or self.dilation[0] > 1
        self.rectifies_input = getattr(self, "rectifies_input", False)

    def forward(self, x: torch.Tensor, pointwise: nn.Conv2d | None = None) -> torch.Tensor:
        """The convolution of `x`; with `pointwise` (a 1x1 convolution without bias), that convolution of the
        result too, which in training keeps no activation between the two (recomputed in the backward pass)."""
        differentiated = torch.is_grad_enabled() and (
            x.requires_grad or self.weight.requires_grad or (pointwise is not None and pointwise.weight.requires_grad)
        )
        fast = (
            self.fast_backward
            and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
            and depthwise_kernels() is not None
        )
        if (
            differentiated
            and (fast or self.rectifies_input or pointwise is not None)
            and not torch.is_autocast_enabled(x.device.type)
        ):
            geometry = self.stride[0], self.padding[0], self.dilation[0]
            pointwise_weight = None if pointwise is None else pointwise.weight
            return DepthwiseConvolution.apply(x, self.weight, pointwise_weight, *geometry, fast, self.rectifies_input)
        output = super().forward(nn.functional.relu(x) if self.rectifies_input else x)
        return output if pointwise is None else pointwise(output)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", rectifies_input=True" if self.rectifies_input else "")


__all__ = ["DepthwiseConv2d", "DepthwiseConvolution", "depthwise_kernels"]
