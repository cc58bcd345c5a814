"""The derived network's two shortcuts (`kernelize`) compute what the plain layers compute: BatchNorm folded into the
convolution before it in evaluation, and one ReLU per tensor for all the operations that begin with one."""

import pytest
import torch
from helpers import assert_same_gradients_and_buffers, kernelized
from torch import nn

from darts_hub import DartsConfig, DartsForImageClassification
from darts_hub.kernels import operations
from darts_hub.kernels.operations import FoldingSequential, folded_batch_norm
from darts_hub.models import ops


def randomized(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm affine parameters and running statistics (fresh ones are the identity map)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.copy_(torch.randn(module.num_features, generator=generator))
    return model


@pytest.mark.parametrize("genotype", ["DARTS_V2", "AmoebaNet"])  # AmoebaNet: 1x7/7x1 convolutions, average pooling
def test_training_step_equals_the_plain_network(genotype):
    """Shared ReLUs: the same logits, gradients and BatchNorm statistics as every operation rectifying alone."""
    torch.manual_seed(0)
    config = DartsConfig(genotype=genotype, init_channels=8, num_cells=5, num_labels=4, use_auxiliary_head=False)
    reference = DartsForImageClassification(config).double().train()
    model = kernelized(reference)
    pixels = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    logits, expected = model(pixels).logits, reference(pixels).logits
    torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-12)
    logits.square().sum().backward()
    expected.square().sum().backward()
    assert_same_gradients_and_buffers(model, reference, buffer_tolerance=0)


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_evaluation_with_folded_batch_norms_equals_the_plain_network(stem, dtype, tolerance, monkeypatch):
    torch.manual_seed(0)
    size = 32 if stem == "cifar" else 64
    config = DartsConfig(genotype="DARTS_V2", stem=stem, init_channels=8, num_cells=5, num_labels=4, image_size=size)
    reference = randomized(DartsForImageClassification(config)).to(dtype).eval()
    model = kernelized(reference)
    pixels = torch.randn(2, 3, size, size, dtype=dtype)
    folded = model(pixels).logits
    monkeypatch.setattr(operations, "folded_batch_norm", lambda batch_norm: None)
    unfolded = model(pixels).logits
    assert not torch.equal(folded, unfolded)  # the folded path did run: its rounding differs
    torch.testing.assert_close(folded, unfolded, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(folded, reference(pixels).logits, rtol=tolerance, atol=tolerance)


def test_folding_only_in_evaluation_with_running_statistics():
    batch_norm = randomized(nn.BatchNorm2d(3))
    assert folded_batch_norm(batch_norm) is None  # training: the batch's statistics
    scale, shift = folded_batch_norm(batch_norm.eval())
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(scale.view(1, 3, 1, 1) * x + shift.view(1, 3, 1, 1), batch_norm(x))
    assert folded_batch_norm(nn.BatchNorm2d(3, track_running_stats=False).eval()) is None


def test_folded_convolutions_keep_their_hooks_and_gradients():
    layers = FoldingSequential(nn.Conv2d(3, 4, 1, bias=False), randomized(nn.BatchNorm2d(4))).eval()
    seen = []
    layers[0].register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    layers(x).sum().backward()
    assert seen == [(2, 4, 5, 5)]
    expected = x.detach().requires_grad_()
    nn.Sequential.forward(layers, expected).sum().backward()
    torch.testing.assert_close(x.grad, expected.grad)
    assert layers[0].weight.grad is not None and layers[1].weight.grad is not None


@pytest.mark.parametrize("affine", [False, True])
def test_separable_convolutions_keep_no_middle_activation_in_training(affine):
    """In training, each depthwise convolution of a SepConv runs with its pointwise convolution as one step that
    keeps only its input (the separable path; equivalence in `test_training_step_equals_the_plain_network` and the
    search's `test_a_channels_last_search_step_equals_pytorchs_layers`); in evaluation the layers run one by one."""
    op = kernelized(ops.SepConv(8, 5, 1, 2, affine=affine)).train()
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    pending, pointwise_weights = [op(x).grad_fn], []
    while pending:
        node = pending.pop()
        if node is not None:
            if node.name() == "DepthwiseConvolutionBackward":
                pointwise_weights.append(node.saved_tensors[2])
            pending += [following for following, _ in node.next_functions]
    assert {weight.data_ptr() for weight in pointwise_weights} == {
        op.op[2].weight.data_ptr(),
        op.op[6].weight.data_ptr(),
    }
    with torch.no_grad():
        torch.testing.assert_close(op.eval()(x), nn.Sequential.forward(op.op, x))
