"""The Hessian monitor: power iteration on the architect's Hessian-vector products against the eigenvalues of the
full Hessian of the validation loss with respect to the alphas (`torch.linalg.eigvalsh`), on a tiny supernet."""

import torch
from helpers import kernelized, tiny_supernet
from test_architect import batches

from darts_hub.search.architect import Architect
from darts_hub.search.hessian import dominant_eigenvalue, largest_eigenvalue, validation_hessian_eigenvalue


def full_alpha_hessian(model, batch) -> torch.Tensor:
    """The Hessian of the loss on `batch` with respect to all the alphas, flattened: (alphas x alphas)."""
    names = [name for name, p in model.named_parameters() if any(p is a for a in model.arch_parameters())]
    shapes = [dict(model.named_parameters())[name].shape for name in names]
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}

    def loss(flat_alphas):
        pieces = flat_alphas.split([s.numel() for s in shapes])
        alphas = {name: piece.view(shape) for name, piece, shape in zip(names, pieces, shapes)}
        return torch.func.functional_call(model, {**alphas, **buffers}, args=(), kwargs=batch).loss

    flat = torch.cat([a.detach().reshape(-1) for a in model.arch_parameters()])
    return torch.autograd.functional.hessian(loss, flat)


def monitored_supernet():
    torch.manual_seed(0)
    model = tiny_supernet().double().train()
    with torch.no_grad():
        for alpha in model.arch_parameters():
            alpha.normal_(0, 1.0)
    return model


def test_power_iteration_finds_the_dominant_eigenvalue_of_a_known_matrix():
    matrix = torch.diag(torch.tensor([-1.0, 0.5, 3.0, 2.9], dtype=torch.float64))
    basis = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    matrix = basis @ matrix @ basis.T
    eigenvalue = dominant_eigenvalue(
        lambda v: [matrix @ v[0]], [torch.zeros(4, dtype=torch.float64)], iterations=2000, tolerance=1e-12
    )
    assert abs(eigenvalue - 3.0) < 1e-6


def test_the_largest_eigenvalue_is_found_when_the_dominant_one_is_negative():
    matrix = torch.diag(torch.tensor([-3.0, 0.5, 1.0, 0.9], dtype=torch.float64))
    basis = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    matrix = basis @ matrix @ basis.T
    operator = (lambda v: [matrix @ v[0]], [torch.zeros(4, dtype=torch.float64)])
    assert abs(dominant_eigenvalue(*operator, iterations=2000, tolerance=1e-12) + 3.0) < 1e-6
    assert abs(largest_eigenvalue(*operator, iterations=2000, tolerance=1e-12) - 1.0) < 1e-6


def test_the_largest_eigenvalue_of_the_full_alpha_hessian_and_of_its_negation():
    """The monitor's value is the maximum of `eigvalsh`, for the Hessian and for minus the Hessian (whose dominant
    eigenvalue has the other sign, so one of the two goes through the shifted second iteration)."""
    model = monitored_supernet()
    _, valid = batches(2)
    eigenvalues = torch.linalg.eigvalsh(full_alpha_hessian(model, valid))
    product = Architect(model, torch.optim.Adam(model.arch_parameters())).validation_hessian_product(valid)
    for sign, expected in ((1.0, eigenvalues.max().item()), (-1.0, -eigenvalues.min().item())):
        found = largest_eigenvalue(
            lambda v, sign=sign: [sign * h for h in product(v)],
            model.arch_parameters(),
            iterations=2000,
            tolerance=1e-12,
        )
        assert abs(found - expected) <= 1e-5 * abs(expected)


def test_the_eigenvalue_is_that_of_the_full_alpha_hessian_and_changes_nothing():
    model = monitored_supernet()
    _, valid = batches(2)
    eigenvalues = torch.linalg.eigvalsh(full_alpha_hessian(model, valid))
    dominant = eigenvalues[eigenvalues.abs().argmax()].item()
    architect = Architect(model, torch.optim.Adam(model.arch_parameters()))
    state = {name: value.clone() for name, value in model.state_dict().items()}
    rng = torch.get_rng_state()
    found = dominant_eigenvalue(
        architect.validation_hessian_product(valid), model.arch_parameters(), iterations=500, tolerance=1e-10
    )
    assert abs(found - dominant) <= 1e-6 * abs(dominant)
    # The weights, alphas, running statistics and the random stream are as they were.
    assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    assert all(alpha.grad is None for alpha in model.arch_parameters())


def test_the_kernelized_supernet_gives_the_same_eigenvalue():
    plain = monitored_supernet()
    fast = kernelized(monitored_supernet())
    _, valid = batches(2)
    values = [
        validation_hessian_eigenvalue(Architect(m, torch.optim.Adam(m.arch_parameters())), valid, iterations=50)
        for m in (plain, fast)
    ]
    torch.testing.assert_close(values[0], values[1], rtol=1e-9, atol=0)
