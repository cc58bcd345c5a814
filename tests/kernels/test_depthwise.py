"""The depthwise convolution with the fast CPU backward pass computes PyTorch's gradients."""

import logging

import pytest
import torch
from helpers import kernelized
from torch import nn

from darts_hub.kernels import depthwise
from darts_hub.kernels.depthwise import DepthwiseConv2d
from darts_hub.models.ops import DilConv, SepConv


def reference_convolution(conv: DepthwiseConv2d) -> nn.Conv2d:
    reference = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        groups=conv.groups,
        bias=False,
    ).to(conv.weight.dtype)
    reference.load_state_dict(conv.state_dict())
    return reference


def gradients(module, x, output_grad, create_graph=False):
    return torch.autograd.grad(module(x), (x, module.weight), output_grad, create_graph=create_graph)


@pytest.fixture(scope="module")
def kernels():
    # The fast path must really run here (a test that silently fell back to PyTorch's backward would prove nothing).
    assert depthwise.depthwise_kernels() is not None
    return depthwise.depthwise_kernels()


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize(
    ("kernel_size", "dilation", "stride"), [(5, 1, 1), (3, 2, 1), (5, 2, 1), (5, 1, 2), (3, 2, 2)]
)
def test_gradients_equal_pytorchs(kernels, kernel_size, dilation, stride, memory_format):
    torch.manual_seed(0)
    # 20 channels: one 16-channel vector of accumulators and a remainder of 4; odd, unequal sides for the edges.
    conv = DepthwiseConv2d(20, kernel_size, stride, dilation * (kernel_size - 1) // 2, dilation).double()
    x = torch.randn(3, 20, 9, 11, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    output = conv(x)
    assert output.grad_fn.name() == "DepthwiseConvolutionBackward"  # ours, not PyTorch's
    output_grad = torch.randn_like(output)
    for ours, theirs in zip(gradients(conv, x, output_grad), gradients(reference_convolution(conv), x, output_grad)):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_float32_gradients_and_one_sided_gradients(kernels):
    torch.manual_seed(0)
    conv = DepthwiseConv2d(16, 5, 1, 4, 2).to(memory_format=torch.channels_last)
    x = torch.randn(8, 16, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    output_grad = torch.randn_like(conv(x))
    reference = reference_convolution(conv)
    for ours, theirs in zip(gradients(conv, x, output_grad), gradients(reference, x, output_grad)):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    # Only the input's gradient (the architecture step's weights are constants), then only the filter's.
    conv.weight.requires_grad_(False)
    (input_grad,) = torch.autograd.grad(conv(x), x, output_grad)
    torch.testing.assert_close(input_grad, torch.autograd.grad(reference(x), x, output_grad)[0], rtol=1e-4, atol=1e-4)
    conv.weight.requires_grad_(True)
    (weight_grad,) = torch.autograd.grad(conv(x.detach()), conv.weight, output_grad)
    (reference_grad,) = torch.autograd.grad(reference(x.detach()), reference.weight, output_grad)
    torch.testing.assert_close(weight_grad, reference_grad, rtol=1e-4, atol=1e-4)


def test_double_backward_equals_pytorchs(kernels):
    """`--hessian exact` differentiates the backward pass itself: PyTorch's differentiable backward runs there."""
    torch.manual_seed(0)
    conv = DepthwiseConv2d(4, 5, 1, 2).double()
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    output_grad = torch.randn(2, 4, 7, 7, dtype=torch.float64)

    def second_order(module):
        input_grad, weight_grad = gradients(module, x, output_grad, create_graph=True)
        return torch.autograd.grad(input_grad.square().sum() + weight_grad.square().sum(), (x, module.weight))

    for ours, theirs in zip(second_order(conv), second_order(reference_convolution(conv))):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kernel_size", "dilation", "stride"), [(3, 1, 1), (5, 1, 1), (3, 2, 2)])
@pytest.mark.parametrize("create_graph", [False, True])
def test_rectifying_the_input_equals_relu_then_convolution(kernels, kernel_size, dilation, stride, create_graph):
    """`rectifies_input`: the convolution of ReLU(x), keeping x instead of ReLU(x); the same output and gradients
    (and second-order gradients) as PyTorch's ReLU followed by PyTorch's convolution, for 3x3 (oneDNN's backward) and
    larger (the kernel's) filters."""
    torch.manual_seed(0)
    padding = dilation * (kernel_size - 1) // 2
    conv = DepthwiseConv2d(20, kernel_size, stride, padding, dilation, rectifies_input=True).double()
    conv = conv.to(memory_format=torch.channels_last)
    reference = nn.Sequential(nn.ReLU(), reference_convolution(conv))
    x = torch.randn(3, 20, 9, 11, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    output = conv(x)
    assert output.grad_fn.name() == "DepthwiseConvolutionBackward"
    saved_input, _, _ = output.grad_fn.saved_tensors
    assert saved_input.data_ptr() == x.data_ptr()  # x itself, no ReLU output
    torch.testing.assert_close(output, reference(x), rtol=1e-12, atol=1e-12)
    output_grad = torch.randn_like(output)
    results = []
    for module in (conv, reference):
        weight = module.weight if module is conv else module[1].weight
        grads = torch.autograd.grad(module(x), (x, weight), output_grad, create_graph=create_graph)
        if create_graph:
            grads = torch.autograd.grad(grads[0].pow(3).sum() + grads[1].square().sum(), (x, weight))
        results.append(grads)
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # evaluation: PyTorch's convolution of the ReLU
        torch.testing.assert_close(conv(x), reference(x), rtol=1e-12, atol=1e-12)


def test_same_module_and_state_dict_as_a_grouped_conv2d():
    conv = DepthwiseConv2d(8, 5, stride=2, padding=4, dilation=2)
    assert isinstance(conv, nn.Conv2d) and conv.groups == 8 and conv.bias is None
    assert list(conv.state_dict()) == ["weight"] and conv.weight.shape == (8, 1, 5, 5)
    assert not DepthwiseConv2d(8, 3, padding=1).fast_backward  # oneDNN's own is fast for 3x3 filters
    # Kernelized, the separable and dilated convolutions keep their layout and state dict (the original's).
    plain = SepConv(8, 5, 1, 2)
    assert [type(layer).__name__ for layer in kernelized(plain).op] == [
        "ReLU", "DepthwiseConv2d", "Conv2d", "BatchNorm2d", "ReLU", "DepthwiseConv2d", "Conv2d", "BatchNorm2d"
    ]  # fmt: skip
    assert list(kernelized(plain).state_dict()) == list(plain.state_dict())
    assert list(kernelized(DilConv(8, 3, 1, 2, 2)).state_dict())[:2] == ["op.1.weight", "op.2.weight"]


def test_without_the_kernel_pytorchs_backward_runs(without_a_compiler, caplog):
    """No compiler: a warning, and the same gradients from PyTorch's own backward pass."""
    with caplog.at_level(logging.WARNING, logger="darts_hub.kernels.build"):
        assert depthwise.depthwise_kernels() is None
    assert "depthwise_backward kernel could not be built (RuntimeError: no C++ compiler here)" in caplog.text
    conv = DepthwiseConv2d(4, 5, 1, 2).double()
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    output = conv(x)
    assert output.grad_fn.name() == "ConvolutionBackward0"  # PyTorch's, not ours
    output_grad = torch.randn_like(output)
    for ours, theirs in zip(gradients(conv, x, output_grad), gradients(reference_convolution(conv), x, output_grad)):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize(
    ("kernel_size", "dilation", "stride", "rectify"), [(3, 1, 1, False), (5, 1, 2, False), (5, 2, 1, True)]
)
@pytest.mark.parametrize("create_graph", [False, True])
def test_with_the_pointwise_convolution_keeps_only_the_input(
    kernels, kernel_size, dilation, stride, rectify, create_graph
):
    """A depthwise convolution followed by a pointwise one (a separable convolution) as one step: PyTorch's output
    and gradients (to the input and both filters; second-order ones too, for `--hessian exact`), keeping the input
    and the filters but not the depthwise convolution's output, recomputed in the backward pass."""
    torch.manual_seed(0)
    padding = dilation * (kernel_size - 1) // 2
    conv = DepthwiseConv2d(20, kernel_size, stride, padding, dilation, rectifies_input=rectify).double()
    pointwise = nn.Conv2d(20, 20, 1, bias=False).double()
    conv, pointwise = conv.to(memory_format=torch.channels_last), pointwise.to(memory_format=torch.channels_last)
    reference = nn.Sequential(nn.ReLU() if rectify else nn.Identity(), reference_convolution(conv), pointwise)
    x = torch.randn(3, 20, 9, 11, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    output = conv(x, pointwise=pointwise)
    assert output.grad_fn.name() == "DepthwiseConvolutionBackward"
    assert [saved.data_ptr() for saved in output.grad_fn.saved_tensors] == [
        x.data_ptr(), conv.weight.data_ptr(), pointwise.weight.data_ptr()
    ]  # fmt: skip
    torch.testing.assert_close(output, reference(x), rtol=1e-12, atol=1e-12)
    output_grad = torch.randn_like(output)
    results = []
    for weights in ((conv.weight, pointwise.weight), (reference[1].weight, pointwise.weight)):
        module_output = conv(x, pointwise=pointwise) if weights[0] is conv.weight else reference(x)
        grads = torch.autograd.grad(module_output, (x, *weights), output_grad, create_graph=create_graph)
        if create_graph:
            grads = torch.autograd.grad(sum(grad.pow(3).sum() for grad in grads), (x, *weights))
        results.append(grads)
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_with_the_pointwise_convolution_one_sided_gradients(kernels):
    """The architecture step's filters are constants (only the input's gradient), the weight step's input may be
    one (only the filters'): each combination gives PyTorch's gradients."""
    torch.manual_seed(0)
    conv, pointwise = DepthwiseConv2d(16, 5, 1, 4, 2), nn.Conv2d(16, 16, 1, bias=False)
    reference = nn.Sequential(reference_convolution(conv), pointwise)
    x = torch.randn(4, 16, 10, 10)
    output_grad = torch.randn(4, 16, 10, 10)
    for needed in ([x], [conv.weight], [pointwise.weight], [conv.weight, pointwise.weight]):
        for tensor in (x, conv.weight, reference[0].weight, pointwise.weight):
            tensor.requires_grad_(False)
        for tensor in needed:
            tensor.requires_grad_(True)
        reference[0].weight.requires_grad_(conv.weight.requires_grad)
        ours = torch.autograd.grad(conv(x, pointwise=pointwise), needed, output_grad)
        theirs_needed = [reference[0].weight if tensor is conv.weight else tensor for tensor in needed]
        theirs = torch.autograd.grad(reference(x), theirs_needed, output_grad)
        for mine, expected in zip(ours, theirs):
            torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize(
    ("kernel_size", "dilation", "stride", "rectify"), [(3, 1, 1, True), (5, 1, 2, False), (5, 2, 1, True)]
)
def test_the_input_gradient_alone_recomputes_nothing(
    kernels, monkeypatch, kernel_size, dilation, stride, rectify, memory_format
):
    """The architecture step's alpha-only passes need the input's gradient alone (the filters are constants): it
    equals PyTorch's, and the backward pass recomputes neither the ReLU nor the depthwise convolution, which only
    the filters' gradients read."""
    torch.manual_seed(0)
    padding = dilation * (kernel_size - 1) // 2
    conv = DepthwiseConv2d(20, kernel_size, stride, padding, dilation, rectifies_input=rectify).double()
    pointwise = nn.Conv2d(20, 20, 1, bias=False).double()
    conv, pointwise = conv.to(memory_format=memory_format), pointwise.to(memory_format=memory_format)
    conv.weight.requires_grad_(False)
    pointwise.weight.requires_grad_(False)
    reference = nn.Sequential(nn.ReLU() if rectify else nn.Identity(), reference_convolution(conv), pointwise)
    x = torch.randn(3, 20, 9, 11, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    calls = []

    def counting(function):
        def counted(*args, **kwargs):
            calls.append(function.__name__)
            return function(*args, **kwargs)

        return counted

    monkeypatch.setattr(depthwise, "_depthwise", counting(depthwise._depthwise))
    monkeypatch.setattr(depthwise.nn.functional, "relu", counting(depthwise.nn.functional.relu))
    output = conv(x, pointwise=pointwise)
    assert output.grad_fn.name() == "DepthwiseConvolutionBackward"
    forward_calls = len(calls)
    output_grad = torch.randn_like(output)
    (ours,) = torch.autograd.grad(output, x, output_grad)
    assert len(calls) == forward_calls  # nothing recomputed in the backward pass
    (theirs,) = torch.autograd.grad(reference(x), x, output_grad)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
