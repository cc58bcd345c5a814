"""The DARTS cell over a sequence with its backward pass through time written out, against the cell run step by step
under autograd (the original's formulation)."""

import pytest
import torch

from darts_hub import DartsRNNConfig, DartsRNNForCausalLM
from darts_hub.models.modeling_darts_rnn import ACTIVATIONS


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
