"""The regularisers against their formulas (beta-decay, random smoothing, DARTS-'s auxiliary skip), and their place in
the architect's step and the supernet."""

import math

import pytest
import torch
from helpers import flat, kernelized, tiny_supernet
from test_architect import batches, supernet_with_optimizers

from darts_hub.models.genotypes import PRIMITIVES
from darts_hub.models.modeling_darts_search import MixedOp, channel_shuffle
from darts_hub.models.ops import FactorizedReduce
from darts_hub.search.architect import Architect
from darts_hub.search.regularisers import AuxiliarySkipDecay, BetaDecay, RandomSmoothing


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


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("partial_channels", [1, 2])
def test_the_auxiliary_skip_adds_the_seen_channels_skip_outside_the_softmax(stride, partial_channels):
    torch.manual_seed(0)
    op = MixedOp(list(PRIMITIVES), 4, stride, partial_channels, auxiliary_skip=True).double()
    plain = MixedOp(list(PRIMITIVES), 4, stride, partial_channels).double()
    plain.load_state_dict(op.state_dict(), strict=False)  # the same candidates; only the auxiliary skip is new
    # DARTS-'s code: the identity on a normal edge, an affine-free factorized reduction on a reduction edge.
    assert isinstance(op.auxiliary_skip, torch.nn.Identity if stride == 1 else FactorizedReduce)
    assert all(not bn.affine for bn in op.auxiliary_skip.modules() if isinstance(bn, torch.nn.BatchNorm2d))
    x = torch.randn(3, 4, 6, 6, dtype=torch.float64)
    weights = torch.softmax(torch.randn(len(PRIMITIVES), dtype=torch.float64), 0)
    seen = x[:, : 4 // partial_channels]
    if partial_channels == 1:
        expected = plain(x, weights) + 0.7 * op.auxiliary_skip(seen)
    else:  # the skip joins the operations' sum before the bypassing channels and the shuffle
        mixed, bypass = (
            plain.weighted_sum(seen, weights) + 0.7 * op.auxiliary_skip(seen),
            plain.split_channels(x, None)[1],
        )
        expected = channel_shuffle(torch.cat([mixed, bypass], 1), partial_channels)
    torch.testing.assert_close(op(x, weights, skip_weight=0.7), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_the_kernelized_auxiliary_skip_trains_as_the_plain_one(stride):
    torch.manual_seed(0)
    reference = MixedOp(list(PRIMITIVES), 4, stride, auxiliary_skip=True).double()
    op = kernelized(reference)
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.softmax(torch.randn(len(PRIMITIVES), dtype=torch.float64), 0)
    ours, theirs = op(x, weights, skip_weight=0.3), reference(x, weights, skip_weight=0.3)
    torch.testing.assert_close(ours, theirs)
    output_grad = torch.randn_like(ours)
    for mine, reference_grad in zip(
        torch.autograd.grad(ours, [x, *op.parameters()], output_grad),
        torch.autograd.grad(theirs, [x, *reference.parameters()], output_grad),
    ):
        torch.testing.assert_close(mine, reference_grad)


def test_a_supernet_with_the_auxiliary_skip_at_weight_zero_is_the_plain_supernet():
    torch.manual_seed(0)
    model = tiny_supernet(auxiliary_skip=True).double().eval()
    plain = tiny_supernet().double().eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected and all(".auxiliary_skip." in key for key in unexpected)
    _, valid = batches(4)
    assert model.auxiliary_skip_weight == 1.0
    assert not torch.allclose(model(**valid).logits, plain(**valid).logits)
    model.auxiliary_skip_weight = 0.0
    torch.testing.assert_close(model(**valid).logits, plain(**valid).logits, rtol=1e-12, atol=1e-12)


def test_auxiliary_skip_decay_goes_linearly_from_one_to_zero():
    model = tiny_supernet(auxiliary_skip=True)
    decay = AuxiliarySkipDecay(model, epochs=50)
    weights = []
    for epoch in (0, 25, 49):
        decay.set_epoch(epoch)
        weights.append(model.auxiliary_skip_weight)
    assert weights == [1.0, 0.5, 1 / 50]  # their code: (50 - epoch) / 50
    with pytest.raises(ValueError, match="auxiliary_skip=True"):
        AuxiliarySkipDecay(tiny_supernet(), epochs=50)
