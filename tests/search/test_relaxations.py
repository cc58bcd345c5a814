"""The sampling relaxations against their definitions: GDAS's hard Gumbel sample and its one-operation edges,
DrNAS's Dirichlet sample and KL term, the temperature schedule, and the kernelized supernet under both."""

import math

import pytest
import torch
from helpers import kernelized, tiny_supernet
from test_architect import batches

from darts_hub.models.genotypes import PRIMITIVES
from darts_hub.models.modeling_darts_search import DartsSearchConfig, MixedOp, hard_gumbel_sample
from darts_hub.search.relaxations import DirichletKL, GumbelTemperature


def test_the_hard_gumbel_sample_is_one_hot_with_the_gumbel_softmax_gradient():
    alphas = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    cost = torch.randn(5, 8, dtype=torch.float64)
    torch.manual_seed(3)
    sample = hard_gumbel_sample(alphas, temperature=0.5)
    torch.manual_seed(3)
    gumbels = -torch.empty_like(alphas).exponential_().log()  # the same draw: g = -log(E), E ~ Exp(1)
    soft = torch.softmax((torch.log_softmax(alphas, -1) + gumbels) / 0.5, -1)
    torch.testing.assert_close(sample.detach(), torch.nn.functional.one_hot(soft.argmax(-1), 8).double())
    (gradient,) = torch.autograd.grad((sample * cost).sum(), alphas)
    (expected,) = torch.autograd.grad((soft * cost).sum(), alphas)
    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("stride", [1, 2])
def test_a_gdas_edge_runs_only_the_sampled_operation(stride):
    torch.manual_seed(0)
    op = MixedOp(list(PRIMITIVES), 4, stride).double()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    weights = torch.zeros(len(PRIMITIVES), dtype=torch.float64)
    column = PRIMITIVES.index("sep_conv_3x3")
    weights[column] = 1.0
    weights.requires_grad_()
    expected = op.ops["sep_conv_3x3"](x)

    class NotToRun(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("an operation that was not sampled ran")

    for name in op.ops:
        if name != "sep_conv_3x3":
            op.ops[name] = NotToRun()
    output = op(x, weights, selected=column)
    torch.testing.assert_close(output, expected)
    output_grad = torch.randn_like(output)
    (gradient,) = torch.autograd.grad(output, weights, output_grad)
    # GDAS's code: the sampled weight gets <grad, op(x)>, every other weight the sum of the output's gradient.
    by_hand = torch.full_like(weights, output_grad.sum().item())
    by_hand[column] = (output_grad * expected).sum()
    torch.testing.assert_close(gradient, by_hand)
    # The zero operation: zeros of the edge's output shape (with a one-hot weight on 'none').
    none = op(x, torch.nn.functional.one_hot(torch.tensor(0), len(PRIMITIVES)).double(), selected=0)
    assert none.shape == expected.shape and torch.count_nonzero(none.detach()) == 0


def test_the_dirichlet_relaxation_samples_in_training_and_takes_the_mean_in_evaluation():
    model = tiny_supernet(relaxation="dirichlet").double()
    with torch.no_grad():
        model.alphas_normal.normal_(0, 1.0)
    concentration = torch.nn.functional.elu(model.alphas_normal) + 1
    model.train()
    first, second = model.mixing_weights()["normal"], model.mixing_weights()["normal"]
    assert not torch.equal(first, second)
    torch.testing.assert_close(first.sum(-1), torch.ones(len(first), dtype=torch.float64))
    (first * torch.arange(8.0, dtype=torch.float64)).sum().backward()  # pathwise: the gradient reaches the alphas
    assert model.alphas_normal.grad.abs().sum() > 0
    model.eval()
    torch.testing.assert_close(
        model.mixing_weights()["normal"], concentration / concentration.sum(-1, keepdim=True), rtol=0, atol=0
    )


def test_the_dirichlet_kl_term_is_the_closed_form_divergence_from_the_uniform_dirichlet():
    alphas = [torch.tensor([[0.5, -0.5, 2.0]], dtype=torch.float64), torch.tensor([[0.0, 1.0, -2.0]]).double()]
    by_hand = 0.0
    for row in torch.cat(alphas):
        a = (torch.nn.functional.elu(row) + 1).tolist()
        total = sum(a)
        digamma = [torch.digamma(torch.tensor(value, dtype=torch.float64)).item() for value in [*a, total]]
        by_hand += (
            math.lgamma(total)
            - sum(math.lgamma(value) for value in a)
            - math.lgamma(len(a))
            + sum((value - 1) * (digamma[i] - digamma[-1]) for i, value in enumerate(a))
        )
    betas = torch.tensor([5.0, 5.0], dtype=torch.float64)  # PC-DARTS's edge betas: not part of the term
    assert abs(DirichletKL(scale=1e-3)([*alphas, betas]).item() - 1e-3 * by_hand) < 1e-12


def test_the_gumbel_temperature_is_annealed_linearly_from_max_to_min():
    model = tiny_supernet(relaxation="gumbel")
    schedule = GumbelTemperature(model, epochs=11, temperature_max=10.0, temperature_min=0.1)
    temperatures = []
    for epoch in (0, 5, 10):
        schedule.set_epoch(epoch)
        temperatures.append(model.temperature)
    assert temperatures == pytest.approx([10.0, 5.05, 0.1], abs=1e-12)


@pytest.mark.parametrize("relaxation", ["gumbel", "dirichlet"])
def test_the_kernelized_supernet_samples_and_trains_as_the_plain_one(relaxation):
    torch.manual_seed(0)
    plain = tiny_supernet(relaxation=relaxation).double().train()
    fast = kernelized(plain)
    _, valid = batches(2)
    losses = []
    for model in (plain, fast):
        torch.manual_seed(7)  # the same samples
        loss = model(**valid).loss
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(fast.parameters(), plain.parameters()):
        if theirs.grad is not None:
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-9, atol=1e-12)


def test_an_unknown_relaxation_is_refused():
    with pytest.raises(
        ValueError, match="relaxation must be one of \\['softmax', 'gumbel', 'dirichlet', 'sigmoid'\\]"
    ):
        DartsSearchConfig(relaxation="softmin")
