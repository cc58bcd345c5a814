"""The architecture step of DARTS (Sec. 2.3 of the paper, eq. 5-8).

The architecture weights alpha minimise the validation loss L_val(w*(alpha), alpha), where w*(alpha) are the weights
trained on the training loss. DARTS approximates w*(alpha) by one step of the weight optimizer:

    w' = w - xi * (momentum * v + grad_w L_train(w, alpha) + weight_decay * w)              (eq. 6)

First order (xi = 0) uses grad_alpha L_val(w, alpha). Second order differentiates through the step:

    grad_alpha L_val(w', alpha) - xi * grad^2_{alpha,w} L_train(w, alpha) . grad_w' L_val(w', alpha)   (eq. 7)

where the Hessian-vector product is approximated by central finite differences (eq. 8), with
w+- = w +- eps * grad_w' L_val(w', alpha) and eps = 0.01 / ||grad_w' L_val(w', alpha)||:

    (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)

or computed exactly by differentiating through the unrolled step (double backward).

Every pass runs the same module with `torch.func.functional_call` on substituted weights: no network is copied or
rebuilt per step and the real weights are never perturbed in place. The passes of a step share one copy of the
buffers (in training BatchNorm only writes its running statistics, in evaluation only reads them), so that the
running statistics are updated by the weight steps only. The architect works with any model that has
`arch_parameters()`, `weight_parameters()`, and a forward taking a batch as keyword arguments and returning an
output with a `loss`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call


ORDERS = (1, 2)
HESSIAN_MODES = ("finite_difference", "exact")


class Architect:
    """Updates the architecture weights of `model` with `optimizer` (the paper: Adam, lr 3e-4, betas (0.5, 0.999),
    weight decay 1e-3).

    Args:
        model: the (unwrapped) supernet.
        optimizer: optimizer over `model.arch_parameters()`.
        order: 1 for first order, 2 for the unrolled (second-order) approximation.
        hessian: `"finite_difference"` (the paper's eq. 8) or `"exact"` (double backward) for second order.
        unrolled_grad_clip: clip the weight gradient of the unrolled step to this norm (the recurrent search: 0.25).
            As in the original, the finite-difference Hessian term ignores the clipping; `"exact"` differentiates
            through it.
        epsilon_scale: the 0.01 of eps = 0.01 / ||grad_w' L_val||.
        autocast: a context manager factory for the forward passes (e.g. `accelerator.autocast`).
        penalty: a term of the alphas added to the architecture objective (`regularisers.BetaDecay`), its gradient
            added to the step's.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        order: int = 1,
        hessian: str = "finite_difference",
        unrolled_grad_clip: float | None = None,
        epsilon_scale: float = 0.01,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        penalty: Callable[[list[torch.Tensor]], torch.Tensor] | None = None,
    ):
        if order not in ORDERS:
            raise ValueError(f"order must be 1 or 2, got {order!r}.")
        if hessian not in HESSIAN_MODES:
            raise ValueError(f"hessian must be one of {HESSIAN_MODES}, got {hessian!r}.")
        self.model = model
        self.optimizer = optimizer
        self.order = order
        self.hessian = hessian
        self.unrolled_grad_clip = unrolled_grad_clip
        self.epsilon_scale = epsilon_scale
        self.autocast = autocast
        self.penalty = penalty
        arch_ids = {id(p) for p in model.arch_parameters()}
        self.arch_names = [name for name, p in model.named_parameters() if id(p) in arch_ids]
        self.weight_names = [name for name, p in model.named_parameters() if id(p) not in arch_ids]

    def step(self, train_batch: Mapping, valid_batch: Mapping, weight_optimizer: torch.optim.Optimizer):
        """One architecture update. `weight_optimizer` (SGD) gives the unrolled step its lr, momentum and decay.

        Returns the outputs of the validation pass (a recurrent search carries their `hidden_state` on)."""
        gradients, validation_outputs = self.arch_gradients(train_batch, valid_batch, weight_optimizer)
        gradients = _average_across_processes(gradients)
        parameters = dict(self.model.named_parameters())
        if self.penalty is not None:  # the same alphas on every process: added after the average
            alphas = [parameters[name] for name in self.arch_names]
            gradients = [g + p for g, p in zip(gradients, _grad_or_zeros(self.penalty(alphas), alphas))]
        for name, gradient in zip(self.arch_names, gradients):
            parameters[name].grad = gradient.to(parameters[name].dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return validation_outputs

    def arch_gradients(
        self, train_batch: Mapping, valid_batch: Mapping, weight_optimizer: torch.optim.Optimizer | None = None
    ) -> tuple[list[torch.Tensor], object]:
        """The gradient of the (first- or second-order) architecture objective with respect to each alpha, and the
        model outputs of the validation pass it differentiates."""
        parameters = dict(self.model.named_parameters())
        alphas = [parameters[name] for name in self.arch_names]
        weights = [parameters[name].detach() for name in self.weight_names]
        # Copies of the buffers for this step's passes, which must not move the BatchNorm running statistics.
        buffers = {name: buffer.clone() for name, buffer in self.model.named_buffers()}
        if self.order == 1:
            outputs = self._forward(weights, alphas, buffers, valid_batch)
            return list(_grad_or_zeros(outputs.loss, alphas)), outputs
        if weight_optimizer is None:
            raise ValueError("Second-order architecture steps need the weight optimizer (its lr, momentum, decay).")
        if self.hessian == "exact":
            return self._exact_unrolled_gradients(weights, alphas, buffers, train_batch, valid_batch, weight_optimizer)
        return self._finite_difference_gradients(weights, alphas, buffers, train_batch, valid_batch, weight_optimizer)

    def validation_hessian_product(self, batch: Mapping) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
        """`vector -> H vector`, with H the Hessian of the loss on `batch` with respect to the alphas at the current
        weights (RobustDARTS's curvature), by differentiating the alpha gradient twice. The forward and its gradient
        are computed once, here; each product is one more backward pass. Nothing is changed: the buffers are copies
        and the alphas' own `.grad` is untouched."""
        parameters = dict(self.model.named_parameters())
        alphas = [parameters[name].detach().requires_grad_() for name in self.arch_names]
        weights = [parameters[name].detach() for name in self.weight_names]
        buffers = {name: buffer.clone() for name, buffer in self.model.named_buffers()}
        gradients = _grad_or_zeros(self._forward(weights, alphas, buffers, batch).loss, alphas, create_graph=True)

        def product(vector: list[torch.Tensor]) -> list[torch.Tensor]:
            projection = sum((g * v).sum() for g, v in zip(gradients, vector))
            return list(_grad_or_zeros(projection, alphas, retain_graph=True))

        return product

    def _forward(self, weights, alphas, buffers, batch: Mapping):
        """The model's outputs on `batch` with the given weights, alphas and buffers substituted."""
        tensors = {**dict(zip(self.weight_names, weights)), **dict(zip(self.arch_names, alphas)), **buffers}
        with self.autocast():
            return functional_call(self.model, tensors, args=(), kwargs=dict(batch))

    def _unrolled_weights(self, weights, gradients, weight_optimizer) -> list[torch.Tensor]:
        """w' = w - lr * (momentum * v + g + weight_decay * w), read from the weight optimizer (eq. 6)."""
        group = weight_optimizer.param_groups[0]
        lr, momentum, weight_decay = group["lr"], group.get("momentum", 0.0), group.get("weight_decay", 0.0)
        if self.unrolled_grad_clip is not None:
            total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients]))
            scale = torch.clamp(self.unrolled_grad_clip / (total_norm + 1e-6), max=1.0)
            gradients = [g * scale for g in gradients]
        parameters = dict(self.model.named_parameters())
        unrolled = []
        for name, w, g in zip(self.weight_names, weights, gradients):
            step = g + weight_decay * w
            buffer = weight_optimizer.state.get(parameters[name], {}).get("momentum_buffer")
            if momentum and buffer is not None:
                step = step + momentum * buffer
            unrolled.append(w - lr * step)
        return unrolled

    def _finite_difference_gradients(self, weights, alphas, buffers, train_batch, valid_batch, weight_optimizer):
        lr = weight_optimizer.param_groups[0]["lr"]
        weights_grad = [w.clone().requires_grad_() for w in weights]
        train_loss = self._forward(weights_grad, [a.detach() for a in alphas], buffers, train_batch).loss
        train_gradients = _grad_or_zeros(train_loss, weights_grad)
        unrolled = [
            w.detach().requires_grad_() for w in self._unrolled_weights(weights, train_gradients, weight_optimizer)
        ]
        validation_outputs = self._forward(unrolled, alphas, buffers, valid_batch)
        valid_gradients = _grad_or_zeros(validation_outputs.loss, alphas + unrolled)
        alpha_gradients, vector = valid_gradients[: len(alphas)], valid_gradients[len(alphas) :]

        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(vector)))
        epsilon = self.epsilon_scale / norm
        step = torch._foreach_mul(vector, epsilon)  # one call for all the weights, not one per weight
        plus, minus = torch._foreach_add(weights, step), torch._foreach_sub(weights, step)
        gradients_plus = _grad_or_zeros(self._forward(plus, alphas, buffers, train_batch).loss, alphas)
        gradients_minus = _grad_or_zeros(self._forward(minus, alphas, buffers, train_batch).loss, alphas)
        gradients = [
            g - lr * (gp - gm) / (2 * epsilon) for g, gp, gm in zip(alpha_gradients, gradients_plus, gradients_minus)
        ]
        return gradients, validation_outputs

    def _exact_unrolled_gradients(self, weights, alphas, buffers, train_batch, valid_batch, weight_optimizer):
        weights_grad = [w.clone().requires_grad_() for w in weights]
        train_gradients = _grad_or_zeros(
            self._forward(weights_grad, alphas, buffers, train_batch).loss, weights_grad, create_graph=True
        )
        unrolled = self._unrolled_weights(weights, train_gradients, weight_optimizer)
        validation_outputs = self._forward(unrolled, alphas, buffers, valid_batch)
        return list(_grad_or_zeros(validation_outputs.loss, alphas)), validation_outputs

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


def _grad_or_zeros(outputs, inputs, **kwargs):
    """`torch.autograd.grad` with zeros for inputs that do not reach the loss: a supernet of one or two cells has
    only reduction cells, so its normal-cell alphas are unused."""
    return torch.autograd.grad(outputs, inputs, materialize_grads=True, **kwargs)


def _average_across_processes(gradients: list[torch.Tensor]) -> list[torch.Tensor]:
    """Average the alpha gradients over all processes.

    `torch.autograd.grad` bypasses DistributedDataParallel's gradient hooks, so without this each rank would update
    its alphas from its own data shard and the ranks would silently diverge.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return gradients
    world_size = torch.distributed.get_world_size()
    if world_size == 1:
        return gradients
    flat = torch.cat([g.reshape(-1) for g in gradients])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    return [chunk.view_as(g) for chunk, g in zip(flat.split([g.numel() for g in gradients]), gradients)]


__all__ = ["HESSIAN_MODES", "ORDERS", "Architect"]
