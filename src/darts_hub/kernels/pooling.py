"""The cells' 3x3 pooling, fast on channels-last CPU tensors, and max pooling that keeps one byte per maximum.

PyTorch's channels-last 3x3 pooling takes 5-10 times the time its memory traffic needs: in a first-order search step
(batch 64, Intel Xeon) the max and average pools of the 112 mixed operations took 10-20% of the time (per-call times
summed over a step, on a noisy machine). And max
pooling keeps, for its backward pass, the flat index of every maximum as int64: twice the memory of the float32
activation. `MaxPool2d` and `AvgPool2d` are `nn.MaxPool2d` and `nn.AvgPool2d` that, for the cells' pooling (3x3,
padding 1, stride 1 or 2) of channels-last float CPU tensors, run a C++ kernel (`pooling.cpp`) and, for max pooling,
keep the position of each maximum in its 3x3 window (one byte). The same results as PyTorch's (tested), which runs
everywhere else (GPUs, other layouts and sizes, no compiler).
"""

from __future__ import annotations

import torch
from torch import nn

from .build import load_kernels


def _runs_the_kernel(layer: nn.Module, x: torch.Tensor) -> bool:
    return (
        layer.kernel_size in (3, (3, 3))
        and layer.padding in (1, (1, 1))
        and layer.stride in (1, 2, (1, 1), (2, 2))
        and not layer.ceil_mode
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and load_kernels("pooling") is not None
    )


def _stride(layer: nn.Module) -> int:
    return layer.stride if isinstance(layer.stride, int) else layer.stride[0]


class MaxPooling(torch.autograd.Function):
    """3x3 max pooling (padding 1) of a channels-last tensor, keeping the window position (0-8) of each maximum."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, stride: int) -> torch.Tensor:
        output, where = load_kernels("pooling").max_pool_forward(x, stride)
        ctx.save_for_backward(where)
        ctx.input_shape, ctx.stride = x.shape, stride
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (where,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # a backward that is itself differentiated (create_graph): PyTorch's own
            input_like = grad.new_empty(ctx.input_shape).contiguous(memory_format=torch.channels_last)
            input_grad = torch.ops.aten.max_pool2d_with_indices_backward(
                grad, input_like, [3, 3], [ctx.stride] * 2, [1, 1], [1, 1], False, _flat_indices(where, ctx)
            )
            return input_grad, None
        grad = grad.contiguous(memory_format=torch.channels_last)
        return load_kernels("pooling").max_pool_backward(grad, where, ctx.input_shape, ctx.stride), None


def _flat_indices(where: torch.Tensor, ctx) -> torch.Tensor:
    """PyTorch's indices of the maxima (row * width + column in the input) from their window positions."""
    out_height, out_width = where.shape[-2:]
    rows = torch.arange(out_height).view(-1, 1) * ctx.stride - 1 + where.long().div(3, rounding_mode="floor")
    columns = torch.arange(out_width) * ctx.stride - 1 + where.long().remainder(3)
    return rows * ctx.input_shape[-1] + columns


class AvgPooling(torch.autograd.Function):
    """3x3 average pooling (padding 1) of a channels-last tensor over the pixels inside the image."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.input_shape, ctx.stride = x.shape, stride
        return load_kernels("pooling").avg_pool_forward(x, stride)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # a backward that is itself differentiated (create_graph): PyTorch's own
            input_like = grad.new_empty(ctx.input_shape).contiguous(memory_format=torch.channels_last)
            return torch.ops.aten.avg_pool2d_backward(
                grad, input_like, [3, 3], [ctx.stride] * 2, [1, 1], False, False, None
            ), None  # fmt: skip
        grad = grad.contiguous(memory_format=torch.channels_last)
        return load_kernels("pooling").avg_pool_backward(grad, ctx.input_shape, ctx.stride), None


class MaxPool2d(nn.MaxPool2d):
    """`nn.MaxPool2d` with the kernel for the cells' 3x3 pooling of channels-last float CPU tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dilation in (1, (1, 1)) and not self.return_indices and _runs_the_kernel(self, x):
            return MaxPooling.apply(x, _stride(self))
        return super().forward(x)


class AvgPool2d(nn.AvgPool2d):
    """`nn.AvgPool2d` with the kernel for the cells' 3x3 pooling (`count_include_pad=False`) of channels-last float
    CPU tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.count_include_pad and self.divisor_override is None and _runs_the_kernel(self, x):
            return AvgPooling.apply(x, _stride(self))
        return super().forward(x)


__all__ = ["AvgPool2d", "AvgPooling", "MaxPool2d", "MaxPooling"]
