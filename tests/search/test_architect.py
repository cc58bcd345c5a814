"""The architect: first and second order (finite differences against the exact unrolled gradient), on the
convolutional and the recurrent supernet."""

import pytest
import torch
from helpers import flat, tiny_supernet

from darts_hub.models.modeling_darts_rnn_search import DartsRNNSearchConfig, DartsRNNSearchModel
from darts_hub.search.architect import Architect


def batches(seed=0, dtype=torch.float64, memory_format=torch.contiguous_format):
    generator = torch.Generator().manual_seed(seed)

    def batch():
        return {
            "pixel_values": torch.randn(8, 3, 8, 8, generator=generator, dtype=dtype).contiguous(
                memory_format=memory_format
            ),
            "labels": torch.randint(0, 3, (8,), generator=generator),
        }

    return batch(), batch()


def supernet_with_optimizers(memory_format=torch.contiguous_format):
    torch.manual_seed(0)
    model = tiny_supernet().double().train().to(memory_format=memory_format)
    with torch.no_grad():
        for alpha in model.arch_parameters():
            alpha.normal_(0, 0.5)
    weight_optimizer = torch.optim.SGD(model.weight_parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), lr=3e-4)
    train, _ = batches(1, memory_format=memory_format)
    model(**train).loss.backward()  # one weight step, so the unrolled step has a momentum buffer
    weight_optimizer.step()
    weight_optimizer.zero_grad()
    return model, weight_optimizer, arch_optimizer


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_second_order_finite_differences_match_the_exact_unrolled_gradient(memory_format):
    """Eq. 7-8 of the paper against autograd through the unrolled weight step (double backward).

    ReLU networks are piecewise linear: a perturbation of 0.01 (the paper's) crosses kinks of this tiny network, so
    the maths is checked in float64 with a perturbation small enough to stay on one linear piece. Channels-last (the
    scripts' layout on the CPU) runs the BatchNorm and pooling kernels, differentiated twice for the exact term."""
    model, weight_optimizer, arch_optimizer = supernet_with_optimizers(memory_format)
    train, valid = batches(memory_format=memory_format)
    first = flat(Architect(model, arch_optimizer, order=1).arch_gradients(train, valid, weight_optimizer)[0])
    finite = flat(
        Architect(model, arch_optimizer, order=2, epsilon_scale=1e-6).arch_gradients(train, valid, weight_optimizer)[0]
    )
    exact = flat(
        Architect(model, arch_optimizer, order=2, hessian="exact").arch_gradients(train, valid, weight_optimizer)[0]
    )
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(finite, exact, dim=0) > 0.99
    torch.testing.assert_close(finite, exact, rtol=1e-5, atol=1e-8)
    assert cosine(first, exact, dim=0) < 0.95  # the second-order term matters
    valid_loss_gradient = torch.autograd.grad(model(**valid).loss, model.arch_parameters())
    torch.testing.assert_close(first, flat(valid_loss_gradient))


@pytest.mark.parametrize("order", [1, 2])
def test_architect_step_moves_only_the_alphas(order):
    model, weight_optimizer, arch_optimizer = supernet_with_optimizers()
    train, valid = batches()
    with torch.no_grad():
        expected = model(**valid).loss  # (in training mode, as the architect's pass; it moves BatchNorm statistics)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    validation_outputs = Architect(model, arch_optimizer, order=order).step(train, valid, weight_optimizer)
    for name, tensor in model.state_dict().items():
        changed = not torch.equal(tensor, before[name])
        assert changed == name.startswith("alphas"), name  # weights and BatchNorm statistics untouched
    # It returns the outputs of the validation pass it differentiated: the current weights (first order) or the
    # unrolled ones (second order), before the alpha update.
    if order == 1:
        torch.testing.assert_close(validation_outputs.loss, expected)
    else:
        assert validation_outputs.loss.shape == () and not torch.isclose(validation_outputs.loss, expected)


def lm_batches(seed=0):
    generator = torch.Generator().manual_seed(seed)

    def batch():
        return {
            "input_ids": torch.randint(0, 30, (4, 5), generator=generator),
            "targets": torch.randint(0, 30, (4, 5), generator=generator),
            "hidden_state": torch.randn(4, 10, generator=generator, dtype=torch.float64) * 0.1,
        }

    return batch(), batch()


def test_shared_architect_on_the_recurrent_supernet():
    """The same architect as the CNN search: its finite-difference second-order gradient matches the exact one.

    (With the recurrent search's clipping of the unrolled weight gradient, the finite-difference Hessian term stays
    the original's unclipped one while `exact` also differentiates the clipping, so they are compared unclipped.)"""
    torch.manual_seed(0)
    config = DartsRNNSearchConfig(
        vocab_size=30, hidden_size=10, num_nodes=3, dropout=0.0, dropout_h=0.0, dropout_x=0.0, dropout_i=0.0
    )
    model = DartsRNNSearchModel(config).double().train()
    with torch.no_grad():
        model.alphas["recurrent"].normal_(0, 0.5)
    weight_optimizer = torch.optim.SGD(model.weight_parameters(), lr=20.0, weight_decay=5e-7)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), lr=3e-3, weight_decay=1e-3)
    train, valid = lm_batches()

    def gradients(**kwargs):
        architect = Architect(model, arch_optimizer, **kwargs)
        return torch.cat([g.reshape(-1) for g in architect.arch_gradients(train, valid, weight_optimizer)[0]])

    # With the paper's own perturbation (0.01): the relu candidate makes the cell piecewise smooth, so the finite
    # difference is close to, not equal to, the exact product (cosine 0.9997 for this draw).
    first, finite, exact = gradients(order=1), gradients(order=2), gradients(order=2, hessian="exact")
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(finite, exact, dim=0) > 0.99
    assert (finite - exact).norm() / exact.norm() < 0.05
    assert cosine(first, exact, dim=0) < 0.9
    before = model.alphas["recurrent"].detach().clone()
    Architect(model, arch_optimizer, order=2, unrolled_grad_clip=0.25).step(train, valid, weight_optimizer)
    assert not torch.equal(before, model.alphas["recurrent"])


def test_unrolled_gradient_clipping_changes_the_second_order_term():
    torch.manual_seed(0)
    config = DartsRNNSearchConfig(
        vocab_size=30, hidden_size=10, num_nodes=3, dropout=0.0, dropout_h=0.0, dropout_x=0.0, dropout_i=0.0
    )
    model = DartsRNNSearchModel(config).double().train()
    weight_optimizer = torch.optim.SGD(model.weight_parameters(), lr=20.0)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), lr=3e-3)
    train, valid = lm_batches(1)
    clipped = Architect(model, arch_optimizer, order=2, hessian="exact", unrolled_grad_clip=1e-3)
    unclipped = Architect(model, arch_optimizer, order=2, hessian="exact")
    a = torch.cat([g.reshape(-1) for g in clipped.arch_gradients(train, valid, weight_optimizer)[0]])
    b = torch.cat([g.reshape(-1) for g in unclipped.arch_gradients(train, valid, weight_optimizer)[0]])
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("order, hessian", [(1, "finite_difference"), (2, "finite_difference"), (2, "exact")])
def test_activation_checkpointing_makes_the_same_search_step(order, hessian):
    """Recomputing each cell in the backward pass (the memory lever) changes nothing a search step computes: the
    architecture step (also with weights substituted by the architect), the weight step, the BatchNorm statistics."""
    from accelerate import Accelerator

    from darts_hub.search.step import SearchStep

    results = []
    for checkpointing in (False, True):
        model, weight_optimizer, arch_optimizer = supernet_with_optimizers()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(cell.gradient_checkpointing for cell in model.cells)
        architect = Architect(model, arch_optimizer, order=order, hessian=hessian)
        train, valid = batches(2)
        search_step = SearchStep(model, architect, weight_optimizer, Accelerator(cpu=True), 5.0)
        outputs, validation_outputs = search_step(train, valid)
        results.append((outputs.loss, validation_outputs.loss, dict(model.state_dict())))
    (loss, valid_loss, state), (checkpointed_loss, checkpointed_valid_loss, checkpointed_state) = results
    torch.testing.assert_close(checkpointed_loss, loss, rtol=0, atol=1e-12)
    torch.testing.assert_close(checkpointed_valid_loss, valid_loss, rtol=0, atol=1e-12)
    assert state.keys() == checkpointed_state.keys()
    for name in state:  # alphas, weights, running statistics and batch counts after the step
        torch.testing.assert_close(checkpointed_state[name], state[name], rtol=0, atol=1e-10, msg=name)
