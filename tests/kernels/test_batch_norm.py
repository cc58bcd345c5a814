"""The training-mode BatchNorm kernel computes what nn.BatchNorm2d computes: outputs, gradients, running statistics."""

import logging

import pytest
import torch
from torch import nn

from darts_hub.kernels.batch_norm import BatchNorm2d


def twins(channels, dtype=torch.float64, **kwargs):
    """Ours and PyTorch's, with the same non-trivial parameters and running statistics."""
    ours = BatchNorm2d(channels, **kwargs).to(dtype)
    generator = torch.Generator().manual_seed(channels)
    with torch.no_grad():
        for tensor in (*ours.parameters(), ours.running_mean):
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=dtype))
        ours.running_var.copy_(torch.rand(channels, generator=generator, dtype=dtype) + 0.5)
    theirs = nn.BatchNorm2d(channels, **kwargs).to(dtype)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def run(layer, x, output_grad):
    x = x.detach().requires_grad_()
    output = layer(x)
    output.backward(output_grad)
    grads = [x.grad] + [parameter.grad for parameter in layer.parameters()]
    return output, grads, output.grad_fn.name()


@pytest.mark.parametrize("channels, size", [(3, (5, 7)), (16, (8, 8)), (36, (7, 6)), (20, (1, 1))])
@pytest.mark.parametrize("options", [{}, {"affine": False}, {"momentum": None}])
def test_training_matches_pytorch_in_float64(channels, size, options):
    torch.manual_seed(0)
    ours, theirs = twins(channels, **options)
    x = (3 * torch.randn(4, channels, *size, dtype=torch.float64) + 1).contiguous(memory_format=torch.channels_last)
    output_grad = torch.randn_like(x)
    for _ in range(2):  # twice: the running statistics move on from the updated ones
        output, grads, grad_fn = run(ours, x, output_grad)
        expected, expected_grads, _ = run(theirs, x, output_grad)
        assert grad_fn == "BatchNormalizationBackward"  # the kernel ran
        torch.testing.assert_close(output, expected, rtol=1e-12, atol=1e-12)
        for grad, expected_grad in zip(grads, expected_grads):
            torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)
        for name, buffer in ours.state_dict().items():
            torch.testing.assert_close(buffer, theirs.state_dict()[name], rtol=1e-12, atol=1e-12, msg=name)


def test_float32_and_the_original_statistics_of_a_search_step():
    ours, theirs = twins(36, dtype=torch.float32, affine=False)
    x = torch.randn(32, 36, 16, 16).contiguous(memory_format=torch.channels_last)
    output_grad = torch.randn_like(x)
    output, grads, _ = run(ours, x, output_grad)
    expected, expected_grads, _ = run(theirs, x, output_grad)
    torch.testing.assert_close(output, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[0], expected_grads[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.running_var, theirs.running_var)


@pytest.mark.parametrize("affine", [True, False])
def test_double_backward_matches_pytorch(affine):
    """`--hessian exact` differentiates the backward pass: with an affine map PyTorch's differentiable backward runs
    there; without, the gradient is built from the kept output and 1 / std, whose own gradient then counts."""
    ours, theirs = twins(5, affine=affine)
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    results = []
    for layer in (ours, theirs):
        inputs = x.detach().requires_grad_()
        (grad,) = torch.autograd.grad(layer(inputs).pow(3).sum(), inputs, create_graph=True)
        results.append(torch.autograd.grad(grad.square().sum(), [inputs, *layer.parameters()]))
    for ours_grad, theirs_grad in zip(*results):
        torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-10, atol=1e-12)


def test_without_an_affine_map_the_output_is_kept_instead_of_the_input():
    """The search's BatchNorm keeps its output (kept anyway by the weighted sum), so its input can be freed."""
    x = torch.randn(4, 6, 5, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    for affine, kept in ((False, "output"), (True, "input")):
        output = BatchNorm2d(6, affine=affine).to(torch.float64)(x)
        saved = output.grad_fn.saved_tensors[0]
        assert saved.data_ptr() == (output if kept == "output" else x).data_ptr(), affine


def test_pytorch_runs_elsewhere_with_the_same_state_dict():
    ours, theirs = twins(4)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    channels_last = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    ours.eval(), theirs.eval()
    assert ours(channels_last).grad_fn.name() != "BatchNormalizationBackward"  # evaluation: the running statistics
    torch.testing.assert_close(ours(channels_last), theirs(channels_last))
    ours.train(), theirs.train()
    output = ours(x.requires_grad_())  # the contiguous layout: PyTorch's
    assert output.grad_fn.name() != "BatchNormalizationBackward"
    torch.testing.assert_close(output, theirs(x))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ours(torch.randn(1, 4, 1, 1, dtype=torch.float64).contiguous(memory_format=torch.channels_last))


def test_without_the_kernel_pytorchs_batch_norm_runs(without_a_compiler, caplog):
    ours, theirs = twins(6)
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    output_grad = torch.randn_like(x)
    with caplog.at_level(logging.WARNING, logger="darts_hub.kernels.build"):
        output, grads, grad_fn = run(ours, x, output_grad)
    assert "batch_norm kernel could not be built (RuntimeError: no C++ compiler here)" in caplog.text
    expected, expected_grads, expected_grad_fn = run(theirs, x, output_grad)
    assert grad_fn == expected_grad_fn
    torch.testing.assert_close(output, expected)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad)
