"""The DARTS recurrent cells over a sequence with their backward pass through time written out (`kernelize`),
against the plain cells of `darts_hub.models`, run step by step under autograd (the original's formulation)."""

import copy

import pytest
import torch
from helpers import backward_nodes, kernelized

from darts_hub import DartsRNNConfig, DartsRNNForCausalLM
from darts_hub.kernels import kernelize
from darts_hub.kernels.build import load_kernels
from darts_hub.models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel


def double_cell(genotype="DARTS_V2"):
    torch.manual_seed(0)
    config = DartsRNNConfig(vocab_size=20, hidden_size=16, init_range=0.5, genotype=genotype)
    return DartsRNNForCausalLM(config).model.cell.double()


@pytest.mark.parametrize("training", [True, False], ids=["dropout", "eval"])
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "left-padded"])
@pytest.mark.parametrize("genotype", ["DARTS_V1", "DARTS_V2"])
def test_outputs_and_every_gradient_equal_the_step_by_step_cell(training, padded, genotype):
    cell = double_cell(genotype).train(training)
    fast = kernelized(cell)
    inputs = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    hidden = torch.randn(3, 16, dtype=torch.float64, requires_grad=True)
    step_mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0, 1]]) if padded else None
    torch.manual_seed(1)
    outputs, last = fast(inputs, hidden, step_mask)
    torch.manual_seed(1)  # the same dropout masks
    expected_outputs, expected_last = cell(inputs, hidden, step_mask)
    assert "HighwayRecurrenceBackward" in backward_nodes(outputs)
    assert "HighwayRecurrenceBackward" not in backward_nodes(expected_outputs)
    torch.testing.assert_close(outputs, expected_outputs, rtol=0, atol=1e-12)
    torch.testing.assert_close(last, expected_last, rtol=0, atol=1e-12)

    output_weights, last_weights = torch.randn_like(outputs), torch.randn_like(last)

    def gradients(cell, outputs, last):
        loss = (outputs * output_weights).sum() + (last * last_weights).sum()
        return torch.autograd.grad(loss, [inputs, hidden, cell.w0, *cell.ws])

    ours, theirs = gradients(fast, outputs, last), gradients(cell, expected_outputs, expected_last)
    for our_gradient, their_gradient in zip(ours, theirs, strict=True):
        torch.testing.assert_close(our_gradient, their_gradient, rtol=0, atol=1e-12)


def test_without_gradients_it_keeps_one_step_and_gives_the_same_outputs():
    cell = double_cell().eval()
    inputs, hidden = torch.randn(2, 9, 16, dtype=torch.float64), torch.randn(2, 16, dtype=torch.float64)
    with torch.no_grad():
        outputs, last = kernelized(cell)(inputs, hidden)
        expected_outputs, expected_last = cell(inputs, hidden)
    torch.testing.assert_close(outputs, expected_outputs, rtol=0, atol=1e-12)
    torch.testing.assert_close(last, expected_last, rtol=0, atol=1e-12)


def test_under_autocast_it_runs_in_bfloat16_and_gives_float32_weight_gradients():
    torch.manual_seed(0)
    model = kernelized(DartsRNNForCausalLM(DartsRNNConfig(vocab_size=20, hidden_size=16))).train()
    ids = torch.randint(0, 20, (3, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(ids, labels=ids, output_hidden_states=True)
    assert outputs.hidden_states[-1].dtype == torch.bfloat16
    outputs.loss.backward()
    cell = model.model.cell
    assert all(w.grad is not None and w.grad.dtype == torch.float32 for w in (cell.w0, *cell.ws))
    assert all(torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0 for w in (cell.w0, *cell.ws))


def search_cell(training):
    torch.manual_seed(0)
    config = DartsRNNSearchConfig(vocab_size=20, hidden_size=12, num_nodes=4, init_range=0.5)
    model = DartsRNNSearchModel(config).double().train(training)
    with torch.no_grad():
        model.alphas["recurrent"].normal_(0, 0.5)
    return model


@pytest.fixture(params=["kernel", "no-compiler"])
def node_implementation(request):
    """The node's elementwise passes by `mixed_node.cpp`, or by PyTorch's operations where it cannot be built."""
    if request.param == "no-compiler":
        request.getfixturevalue("without_a_compiler")
    else:
        assert load_kernels("mixed_node") is not None
    return request.param


@pytest.mark.parametrize("training", [True, False], ids=["batch-statistics", "running-statistics"])
def test_search_cell_equals_its_step_by_step_form_in_outputs_gradients_and_statistics(training, node_implementation):
    model = search_cell(training)
    cell, alphas = model.cell, model.alphas["recurrent"]
    fast = kernelized(cell)
    inputs = torch.randn(5, 6, 12, dtype=torch.float64, requires_grad=True)
    hidden = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    weights = torch.softmax(alphas, -1)
    torch.manual_seed(1)
    outputs, last = fast(inputs, hidden, weights)
    torch.manual_seed(1)  # the same dropout masks
    expected, _ = cell(inputs, hidden, weights)
    assert "MixedHighwayRecurrenceBackward" in backward_nodes(outputs)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-12)
    assert torch.equal(last, outputs[:, -1])
    for name, buffer in fast.bn.named_buffers():  # moved by training, 5 BatchNorms a step
        torch.testing.assert_close(buffer, getattr(cell.bn, name), rtol=0, atol=1e-12)
    assert int(fast.bn.num_batches_tracked) == (30 if training else 0)

    output_weights = torch.randn_like(outputs)

    def gradients(cell, outputs):
        differentiated = [inputs, hidden, cell.w0, alphas, *cell.ws]
        return torch.autograd.grad((outputs * output_weights).sum(), differentiated, retain_graph=True)

    for our_gradient, their_gradient in zip(gradients(fast, outputs), gradients(cell, expected), strict=True):
        assert their_gradient.abs().sum() > 0
        torch.testing.assert_close(our_gradient, their_gradient, rtol=0, atol=1e-12)

    # A differentiated backward pass (`--hessian exact`): a Hessian-vector product through the weight gradients.
    vectors = [torch.randn_like(weight) for weight in cell.ws]

    def hessian_vector_product(cell, outputs):
        gradients = torch.autograd.grad(
            (outputs * output_weights).sum(), list(cell.ws), create_graph=True, retain_graph=True
        )
        product = sum((gradient * vector).sum() for gradient, vector in zip(gradients, vectors))
        return torch.autograd.grad(product, [alphas, hidden, cell.w0], retain_graph=True)

    ours, theirs = hessian_vector_product(fast, outputs), hessian_vector_product(cell, expected)
    for our_product, their_product in zip(ours, theirs):
        assert their_product.abs().sum() > 0
        torch.testing.assert_close(our_product, their_product, rtol=1e-12, atol=1e-12)


def test_search_cell_without_gradients_and_under_autocast(node_implementation):
    model = search_cell(training=True)
    reference = copy.deepcopy(model.cell)
    cell = kernelize(model).cell
    inputs, hidden = torch.randn(5, 6, 12, dtype=torch.float64), torch.randn(5, 12, dtype=torch.float64)
    weights = torch.softmax(model.alphas["recurrent"], -1).detach()
    with torch.no_grad():
        torch.manual_seed(1)
        outputs, _ = cell(inputs, hidden, weights)
        torch.manual_seed(1)
        expected, _ = reference(inputs, hidden, weights)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-12)
    model.float()
    with torch.no_grad():
        torch.manual_seed(1)  # the same dropout masks
        full_precision, _ = cell(inputs.float(), hidden.float(), weights.float())
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the step-by-step form: bfloat16 products, float32 norms
            outputs, _ = cell(inputs.float(), hidden.float(), weights.float())
    assert not torch.equal(outputs, full_precision)
    torch.testing.assert_close(outputs, full_precision, rtol=0, atol=0.1)
