"""The pooling kernel computes what nn.MaxPool2d and nn.AvgPool2d compute: outputs (exactly) and gradients."""

import logging

import pytest
import torch
from torch import nn

from darts_hub.kernels.pooling import AvgPool2d, MaxPool2d


SHAPES = [(3, 5, 7, 6), (2, 16, 8, 8), (2, 3, 1, 1), (1, 4, 2, 3), (2, 36, 9, 9)]


def twins(kind, stride):
    if kind == "max":
        return MaxPool2d(3, stride, 1), nn.MaxPool2d(3, stride, 1)
    return AvgPool2d(3, stride, 1, count_include_pad=False), nn.AvgPool2d(3, stride, 1, count_include_pad=False)


def run(layer, x, output_grad=None):
    x = x.detach().requires_grad_()
    output = layer(x)
    output.backward(torch.ones_like(output) if output_grad is None else output_grad)
    return output, x.grad, output.grad_fn.name()


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_matches_pytorch(kind, stride, shape, dtype, tolerance):
    torch.manual_seed(0)
    ours, theirs = twins(kind, stride)
    # Rounded to one decimal: many ties inside a window, where the first maximum must win as in PyTorch.
    x = torch.randn(shape, dtype=dtype).round(decimals=1).contiguous(memory_format=torch.channels_last)
    expected, expected_grad, _ = run(theirs, x, output_grad := torch.randn_like(theirs(x)))
    output, grad, grad_fn = run(ours, x, output_grad)
    assert grad_fn == f"{kind.title()}PoolingBackward"  # the kernel ran
    assert torch.equal(output, expected)  # the same scan order and summation order
    torch.testing.assert_close(grad, expected_grad, rtol=tolerance, atol=tolerance)  # sums of up to 9, reordered
    assert output.is_contiguous(memory_format=torch.channels_last)
    assert grad.is_contiguous(memory_format=torch.channels_last)


def test_max_pooling_follows_pytorch_on_nan_and_infinity():
    """NaN wins its window (the last NaN gets the gradient); a window of -inf gives its first pixel the gradient."""
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    x[0, 0, 1, 1], x[0, 0, 1, 2] = float("nan"), float("nan")
    x[0, 1] = -float("inf")
    x = x.contiguous(memory_format=torch.channels_last)
    ours, theirs = twins("max", 1)
    (output, grad, _), (expected, expected_grad, _) = run(ours, x), run(theirs, x)
    torch.testing.assert_close(output, expected, equal_nan=True)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_double_backward_matches_pytorch(kind):
    """`--hessian exact` differentiates the backward pass: PyTorch's differentiable backward runs there."""
    ours, theirs = twins(kind, 2)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weights = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    results = []
    for layer in (ours, theirs):
        inputs = x.detach().requires_grad_()
        (grad,) = torch.autograd.grad((layer(inputs).square() * weights).sum(), inputs, create_graph=True)
        results.append(torch.autograd.grad(grad.pow(3).sum(), inputs))
    torch.testing.assert_close(*results[0], *results[1], rtol=1e-10, atol=1e-12)


def test_max_pooling_keeps_one_byte_per_value():
    """The position of each maximum in its window, instead of PyTorch's int64 index (twice a float32 value)."""
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    (where,) = MaxPool2d(3, 1, 1)(x).grad_fn.saved_tensors
    assert where.dtype == torch.uint8 and where.shape == x.shape
    assert int(where.max()) <= 8


def test_pytorch_runs_elsewhere():
    x = torch.randn(2, 4, 6, 6)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    for ours, theirs, inputs in [
        (MaxPool2d(3, 1, 1), nn.MaxPool2d(3, 1, 1), x),  # the contiguous layout
        (MaxPool2d(2, 2), nn.MaxPool2d(2, 2), channels_last),  # another size
        (AvgPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1), channels_last),  # padding counted
    ]:
        output = ours(inputs.requires_grad_())
        assert output.grad_fn.name() not in ("MaxPoolingBackward", "AvgPoolingBackward")
        torch.testing.assert_close(output, theirs(inputs))


def test_without_the_kernel_pytorchs_pooling_runs(without_a_compiler, caplog):
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    for kind in ("max", "avg"):
        ours, theirs = twins(kind, 1)
        with caplog.at_level(logging.WARNING, logger="darts_hub.kernels.build"):
            output, grad, grad_fn = run(ours, x)
        expected, expected_grad, expected_grad_fn = run(theirs, x)
        assert grad_fn == expected_grad_fn
        torch.testing.assert_close(output, expected)
        torch.testing.assert_close(grad, expected_grad)
    assert "pooling kernel could not be built (RuntimeError: no C++ compiler here)" in caplog.text
