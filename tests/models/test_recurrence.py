"""The DARTS cells over a sequence with their backward pass through time written out, against the cells run step by
step under autograd (the original's formulation)."""

import copy

import pytest
import torch

from darts_hub import DartsRNNConfig, DartsRNNForCausalLM
from darts_hub.models.cpu_kernels import load_kernels
from darts_hub.models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from darts_hub.models.recurrence import ACTIVATIONS, mixed_highway_steps


def step_by_step(cell, inputs, hidden, x_mask, h_mask, step_mask=None):
    """The original DARTSCell's time loop: [x, h] W0 for the initial node, then each genotype node."""
    outputs = []
    for t in range(inputs.shape[1]):
        x = inputs[:, t]
        xh = torch.cat([x * x_mask, hidden * h_mask], -1) if x_mask is not None else torch.cat([x, hidden], -1)
        c0, h0 = (xh @ cell.w0).chunk(2, -1)
        states = [hidden + c0.sigmoid() * (h0.tanh() - hidden)]
        for weight, (name, source) in zip(cell.ws, cell.genotype.recurrent):
            s_prev = states[source]
            c, h = ((s_prev * h_mask if h_mask is not None else s_prev) @ weight).chunk(2, -1)
            states.append(s_prev + c.sigmoid() * (ACTIVATIONS[name](h) - s_prev))
        new_hidden = torch.stack([states[i] for i in cell.genotype.concat], -1).mean(-1)
        if step_mask is not None:
            new_hidden = torch.where(step_mask[:, t, None].bool(), new_hidden, hidden)
        hidden = new_hidden
        outputs.append(hidden)
    return torch.stack(outputs, 1), hidden


def double_cell(genotype="DARTS_V2"):
    torch.manual_seed(0)
    config = DartsRNNConfig(vocab_size=20, hidden_size=16, init_range=0.5, genotype=genotype)
    return DartsRNNForCausalLM(config).model.cell.double()


@pytest.mark.parametrize("training", [True, False], ids=["dropout", "eval"])
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "left-padded"])
@pytest.mark.parametrize("genotype", ["DARTS_V1", "DARTS_V2"])
def test_outputs_and_every_gradient_equal_the_step_by_step_cell(training, padded, genotype):
    cell = double_cell(genotype).train(training)
    inputs = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    hidden = torch.randn(3, 16, dtype=torch.float64, requires_grad=True)
    step_mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0, 1]]) if padded else None
    torch.manual_seed(1)
    outputs, last = cell(inputs, hidden, step_mask)
    torch.manual_seed(1)
    x_mask, h_mask = cell.dropout_masks(inputs)
    assert (x_mask is not None) == training
    expected_outputs, expected_last = step_by_step(cell, inputs, hidden, x_mask, h_mask, step_mask)
    torch.testing.assert_close(outputs, expected_outputs, rtol=0, atol=1e-12)
    torch.testing.assert_close(last, expected_last, rtol=0, atol=1e-12)

    output_weights, last_weights = torch.randn_like(outputs), torch.randn_like(last)
    differentiated = [inputs, hidden, cell.w0, *cell.ws]

    def gradients(outputs, last):
        return torch.autograd.grad((outputs * output_weights).sum() + (last * last_weights).sum(), differentiated)

    for ours, theirs in zip(gradients(outputs, last), gradients(expected_outputs, expected_last), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_without_gradients_it_keeps_one_step_and_gives_the_same_outputs():
    cell = double_cell().eval()
    inputs, hidden = torch.randn(2, 9, 16, dtype=torch.float64), torch.randn(2, 16, dtype=torch.float64)
    with torch.no_grad():
        outputs, last = cell(inputs, hidden)
    expected_outputs, expected_last = step_by_step(cell, inputs, hidden, None, None)
    torch.testing.assert_close(outputs, expected_outputs.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(last, expected_last.detach(), rtol=0, atol=1e-12)


def test_under_autocast_it_runs_in_bfloat16_and_gives_float32_weight_gradients():
    torch.manual_seed(0)
    model = DartsRNNForCausalLM(DartsRNNConfig(vocab_size=20, hidden_size=16)).train()
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


def search_cell_step_by_step(cell, inputs, hidden, weights, bn):
    """`mixed_highway_steps` with the cell's weights and dropout masks (drawn from the same seed as the cell's)."""
    torch.manual_seed(1)
    x_mask, h_mask = cell.dropout_masks(inputs)
    x = inputs * x_mask[:, None] if x_mask is not None else inputs
    w0_x, w0_h = cell.w0.split(cell.hidden_size)
    x_projection = (x @ w0_x).transpose(0, 1)
    edge_weights = weights[:, cell.op_columns]
    return mixed_highway_steps(x_projection, hidden, w0_h, edge_weights, h_mask, list(cell.ws), bn).transpose(0, 1)


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
    reference_bn = copy.deepcopy(cell.bn)
    inputs = torch.randn(5, 6, 12, dtype=torch.float64, requires_grad=True)
    hidden = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    weights = torch.softmax(alphas, -1)
    torch.manual_seed(1)
    outputs, last = cell(inputs, hidden, weights)
    expected = search_cell_step_by_step(cell, inputs, hidden, weights, reference_bn)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-12)
    assert torch.equal(last, outputs[:, -1])
    for name, buffer in cell.bn.named_buffers():  # moved by training, 5 BatchNorms a step
        torch.testing.assert_close(buffer, getattr(reference_bn, name), rtol=0, atol=1e-12)
    assert int(cell.bn.num_batches_tracked) == (30 if training else 0)

    output_weights = torch.randn_like(outputs)
    differentiated = [inputs, hidden, cell.w0, alphas, *cell.ws]
    ours = torch.autograd.grad((outputs * output_weights).sum(), differentiated, retain_graph=True)
    theirs = torch.autograd.grad((expected * output_weights).sum(), differentiated, retain_graph=True)
    for our_gradient, their_gradient in zip(ours, theirs, strict=True):
        assert their_gradient.abs().sum() > 0
        torch.testing.assert_close(our_gradient, their_gradient, rtol=0, atol=1e-12)

    # A differentiated backward pass (`--hessian exact`): a Hessian-vector product through the weight gradients.
    vectors = [torch.randn_like(weight) for weight in cell.ws]

    def hessian_vector_product(outputs):
        gradients = torch.autograd.grad(
            (outputs * output_weights).sum(), list(cell.ws), create_graph=True, retain_graph=True
        )
        product = sum((gradient * vector).sum() for gradient, vector in zip(gradients, vectors))
        return torch.autograd.grad(product, [alphas, hidden, cell.w0], retain_graph=True)

    for our_product, their_product in zip(hessian_vector_product(outputs), hessian_vector_product(expected)):
        assert their_product.abs().sum() > 0
        torch.testing.assert_close(our_product, their_product, rtol=0, atol=1e-12)


def test_search_cell_without_gradients_and_under_autocast(node_implementation):
    model = search_cell(training=True)
    cell = model.cell
    inputs, hidden = torch.randn(5, 6, 12, dtype=torch.float64), torch.randn(5, 12, dtype=torch.float64)
    weights = torch.softmax(model.alphas["recurrent"], -1).detach()
    reference_bn = copy.deepcopy(cell.bn)
    with torch.no_grad():
        torch.manual_seed(1)
        outputs, _ = cell(inputs, hidden, weights)
        expected = search_cell_step_by_step(cell, inputs, hidden, weights, reference_bn)
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
