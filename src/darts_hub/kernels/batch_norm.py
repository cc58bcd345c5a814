"""BatchNorm whose training-mode passes are fast on channels-last CPU tensors.

PyTorch's channels-last BatchNorm, in training mode, takes 2-5 times the time its memory traffic needs (most with
channel counts that are not a multiple of the vector width, such as DARTS_V2's 36): 28% of a DARTS_V2 training step,
23% of a search step. `BatchNorm2d` is an `nn.BatchNorm2d` (the same parameters, buffers and state dict) that, in
training mode on channels-last float CPU tensors, normalises with a C++ kernel (`batch_norm.cpp`: one pass of
per-channel sums in double precision and one affine pass, forward and backward). The same mathematics (tested against
PyTorch's outputs, gradients and running statistics). Elsewhere (evaluation, GPUs, autocast, the contiguous layout,
no compiler) and for double backward (`--hessian exact`), PyTorch's own BatchNorm runs.
"""

from __future__ import annotations

import torch
from torch import nn

from .build import load_kernels


class BatchNormalization(torch.autograd.Function):
    """Training-mode BatchNorm of a channels-last tensor: returns the output, the batch mean, 1 / sqrt(variance + eps)
    and the biased variance (the mean and variance for the running statistics, not differentiable).

    Without an affine map (the search's BatchNorm) the output is the normalised input x_hat itself, all that the
    backward pass needs besides 1 / sqrt(variance + eps): the output is kept instead of the input, and the output is
    kept anyway by what follows (a mixed operation's weighted sum keeps each operation's output for the gradient of
    its weight), so the input is freed: one activation less per operation, a fifth of a search step's memory.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float):
        output, mean, invstd, variance = load_kernels("batch_norm").batch_norm_forward(x, weight, bias, eps)
        ctx.keeps_output = weight is None and bias is None
        ctx.save_for_backward(output if ctx.keeps_output else x, weight, mean, invstd)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, variance, *(() if ctx.keeps_output else (invstd,)))
        ctx.set_materialize_grads(False)  # no full-size zeros for the outputs nothing used
        return output, mean, invstd, variance

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None, _mean_grad, invstd_grad: torch.Tensor | None, _variance_grad):
        if ctx.keeps_output:
            return _normalized_backward(ctx, grad, invstd_grad), None, None, None
        x, weight, mean, invstd = ctx.saved_tensors
        if grad is None:
            return None, None, None, None
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # a backward that is itself differentiated (create_graph): PyTorch's own
            input_grad, weight_grad, bias_grad = torch.ops.aten.native_batch_norm_backward(
                grad, x, weight, None, None, mean, invstd, True, ctx.eps, [need_input, need_weight, need_bias]
            )
            return input_grad, weight_grad, bias_grad, None
        grad = grad.contiguous(memory_format=torch.channels_last)
        input_grad, weight_grad, bias_grad = load_kernels("batch_norm").batch_norm_backward(
            grad, x, mean, invstd, weight, need_input
        )
        return input_grad, weight_grad if need_weight else None, bias_grad if need_bias else None, None


def _normalized_backward(ctx, grad: torch.Tensor | None, invstd_grad: torch.Tensor | None) -> torch.Tensor | None:
    """The input gradient of BatchNorm without an affine map, from its output x_hat:
    invstd * (grad - mean(grad) - x_hat * mean(grad * x_hat)), per channel, plus, when 1 / sqrt(variance + eps) was
    itself used (only by a differentiated backward pass, `--hessian exact`), its gradient -invstd^2 * x_hat / count."""
    x_hat, _, _, invstd = ctx.saved_tensors
    count = x_hat.numel() // x_hat.shape[1]
    per_channel = (-1, 1, 1)
    input_grad = None
    if grad is not None and torch.is_grad_enabled():  # differentiable operations, for the next backward pass
        dims = (0, 2, 3)
        centred = grad - grad.mean(dims, keepdim=True) - x_hat * (grad * x_hat).mean(dims, keepdim=True)
        input_grad = invstd.view(per_channel) * centred
    elif grad is not None:  # the kernel's backward with x = x_hat: mean 0, 1 / std 1, and invstd as the scale
        input_grad, _, _ = load_kernels("batch_norm").batch_norm_backward(
            grad.contiguous(memory_format=torch.channels_last),
            x_hat,
            torch.zeros_like(invstd),
            torch.ones_like(invstd),
            invstd,
            True,
        )
    if invstd_grad is not None:
        invstd_term = x_hat * (-invstd.square() * invstd_grad / count).view(per_channel)
        input_grad = invstd_term if input_grad is None else input_grad + invstd_term
    return input_grad


class BatchNorm2d(nn.BatchNorm2d):
    """`nn.BatchNorm2d` with the fast training-mode passes for channels-last float tensors on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            (self.training or self.running_mean is None)
            and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
            and x.dim() == 4
            and x.numel() > x.shape[1]  # one value per channel: PyTorch's error
            and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.is_autocast_enabled("cpu")
            and load_kernels("batch_norm") is not None
        ):
            return super().forward(x)
        output, mean, _, variance = BatchNormalization.apply(x, self.weight, self.bias, self.eps)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                count = x.numel() // x.shape[1]
                self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
                self.running_var.mul_(1 - factor).add_(variance, alpha=factor * count / max(count - 1, 1))
        return output


__all__ = ["BatchNorm2d", "BatchNormalization"]
