"""The regularisers of the architecture objective against their formulas, and their place in the architect's step."""

import math

import torch
from helpers import flat
from test_architect import batches, supernet_with_optimizers

from darts_hub.search.architect import Architect
from darts_hub.search.regularisers import BetaDecay, RandomSmoothing


def test_beta_decay_is_the_mean_log_sum_exp_of_the_edges_weighted_by_the_epoch():
    alphas = [torch.tensor([[0.0, 1.0], [2.0, -1.0]]), torch.tensor([[0.5, 0.5]]), torch.tensor([9.0, 9.0])]
    beta_decay = BetaDecay(rate=0.5)
    assert beta_decay(alphas).item() == 0.0  # epoch 0: no weight
    beta_decay.set_epoch(4)
    by_hand = [math.log(math.exp(0) + math.exp(1)), math.log(math.exp(2) + math.exp(-1)), math.log(2 * math.exp(0.5))]
    # The edges of the normal and reduction cells; PC-DARTS's edge betas (the third tensor) are not decayed.
    assert abs(beta_decay(alphas).item() - 2.0 * sum(by_hand) / 3) < 1e-6


def test_the_architect_adds_the_gradient_of_beta_decay_softmax_over_the_edges():
    model, weight_optimizer, arch_optimizer = supernet_with_optimizers()
    train, valid = batches(3)
    plain = Architect(model, arch_optimizer)
    beta_decay = BetaDecay(rate=0.5)
    beta_decay.set_epoch(10)
    decayed = Architect(model, arch_optimizer, penalty=beta_decay)
    alphas = model.arch_parameters()
    before = [alpha.detach().clone() for alpha in alphas]
    gradient = flat(plain.arch_gradients(train, valid)[0])
    edges = sum(alpha.shape[0] for alpha in alphas[:2])
    expected = gradient + flat([5.0 * torch.softmax(alpha, -1) / edges for alpha in before])
    # Adam's first step moves each alpha by -lr * sign(gradient): compare the gradients the step was given.
    seen = []
    arch_optimizer.step = lambda: seen.append(flat([alpha.grad for alpha in alphas]))
    decayed.step(train, valid, weight_optimizer)
    torch.testing.assert_close(seen[0], expected, rtol=1e-10, atol=1e-12)


def test_random_smoothing_perturbs_each_edge_within_its_radius_and_renormalises():
    smoothing = RandomSmoothing(epochs=10, epsilon=0.3, start=0.03)
    assert smoothing.epsilon == 0.03
    smoothing.set_epoch(5)
    assert abs(smoothing.epsilon - 0.165) < 1e-12  # 0.03 + 0.27 * 5 / 10
    weights = torch.softmax(torch.randn(14, 8, generator=torch.Generator().manual_seed(0)), -1)
    torch.manual_seed(1)
    perturbed = smoothing.perturb(weights)
    torch.manual_seed(1)
    by_hand = (weights + (torch.rand(14, 8) * 2 - 1) * 0.165).clamp(0, 1)
    torch.testing.assert_close(perturbed, by_hand / by_hand.sum(-1, keepdim=True), rtol=0, atol=1e-7)
    assert not torch.allclose(perturbed, weights)
    # A row the noise pushes below zero everywhere becomes one-hot at its largest perturbed weight.
    smoothing.epsilon = 0.0
    assert smoothing.perturb(torch.tensor([[-0.2, -0.1, -0.3]])).tolist() == [[0.0, 1.0, 0.0]]


def test_the_supernet_mixes_with_given_weights_as_with_its_own():
    model, _, _ = supernet_with_optimizers()
    _, valid = batches(4)
    model.eval()
    own = model(**valid).logits
    torch.testing.assert_close(model(**valid, mixing_weights=model.mixing_weights()).logits, own, rtol=0, atol=0)
    uniform = {cell: torch.full_like(w, 1 / w.shape[-1]) for cell, w in model.mixing_weights().items()}
    assert not torch.allclose(model(**valid, mixing_weights=uniform).logits, own)
