"""The DARTS recurrent cells over a whole sequence, with their backward pass through time written out.

Run step by step under autograd, the trained cell's weight gradients are 9 outer products per time step (`[hidden,
batch] @ [batch, 2 hidden]`, written to memory and added up: 315 of them for a 35-token chunk), and autograd keeps
every intermediate of every node; the search cell adds some 25 small operations per node forward and 60 backward. Here
the forward pass keeps only the states, gates and activations of each node; the backward pass walks the time steps
back computing only what is sequential (the gradients of the states), and the weight gradients come at the end as one
matrix product per weight over all time steps (`[hidden, time x batch] @ [time x batch, 2 hidden]`). The input's half
of the initial node's projection does not depend on the recurrence and is one product over the whole sequence,
outside (`cells.input_projection`).

`HighwayRecurrence` runs the trained cell (any genotype; not differentiable twice, which nothing needs);
`MixedHighwayRecurrence` the search cell, whose nodes' elementwise work runs in `mixed_node.cpp` on the CPU. Both are
the same mathematics as the step-by-step cells of `darts_hub.models` (tested against them: outputs, statistics and every gradient).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..models.genotypes import RECURRENT_OPERATIONS
from ..models.modeling_darts_rnn import ACTIVATIONS
from .build import load_kernels


def _activation(name: str, pre_activation: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    if name == "tanh":
        return torch.tanh(pre_activation, out=out)
    if name == "sigmoid":
        return torch.sigmoid(pre_activation, out=out)
    if name == "relu":
        return torch.clamp(pre_activation, min=0, out=out)
    return out.copy_(pre_activation)  # identity


def _activation_derivative(name: str, activated: torch.Tensor) -> torch.Tensor | float:
    """f'(pre-activation) from f's output: all four activations allow it."""
    if name == "tanh":
        return 1 - activated * activated
    if name == "sigmoid":
        return activated * (1 - activated)
    if name == "relu":
        return (activated > 0).to(activated.dtype)
    return 1.0


class HighwayRecurrence(torch.autograd.Function):
    """inputs: the input's projection `[time, batch, 2 hidden]` (x W0_x, dropout applied), the first state `[batch,
    hidden]`, W0_h `[hidden, 2 hidden]` and one `[hidden, 2 hidden]` weight per node; `nodes` the (activation, source
    state) of each node, `concat` the states averaged into the output, `h_mask` the variational dropout mask of the
    states (or None) and `step_mask` `[time, batch]` (or None: 0 where a stream's state stays unchanged). Returns the
    cell's outputs `[time, batch, hidden]`."""

    @staticmethod
    def forward(ctx, x_projection, hidden, w_hidden, nodes, concat, h_mask, step_mask, *weights):
        time, batch, hidden_size = x_projection.shape[0], *hidden.shape
        saving = any(ctx.needs_input_grad)
        num_states = len(nodes) + 1
        # states, gates and activations of every node at every step (one step's worth when nothing is saved)
        kept_steps = time if saving else 1
        states = hidden.new_empty(kept_steps, num_states, batch, hidden_size)
        gates, activated = torch.empty_like(states), torch.empty_like(states)
        outputs = hidden.new_empty(time, batch, hidden_size)
        projection = hidden.new_empty(batch, 2 * hidden_size)
        masked = torch.empty_like(hidden)
        all_weights, all_nodes = (w_hidden, *weights), (("tanh", None), *nodes)  # the initial node first
        for t in range(time):
            k = t if saving else 0
            h_prev = outputs[t - 1] if t else hidden
            for i, ((name, source), weight) in enumerate(zip(all_nodes, all_weights)):
                s_prev = h_prev if source is None else states[k, source]
                m = torch.mul(s_prev, h_mask, out=masked) if h_mask is not None else s_prev
                if source is None:
                    torch.addmm(x_projection[t], m, weight, out=projection)
                else:
                    torch.mm(m, weight, out=projection)
                c = torch.sigmoid(projection[:, :hidden_size], out=gates[k, i])
                g = _activation(name, projection[:, hidden_size:], out=activated[k, i])
                torch.sub(g, s_prev, out=states[k, i]).mul_(c).add_(s_prev)
            torch.mean(states[k, list(concat)], dim=0, out=outputs[t])
            if step_mask is not None:
                outputs[t] = torch.where(step_mask[t, :, None].bool(), outputs[t], h_prev)
        if saving:
            ctx.save_for_backward(
                x_projection, hidden, w_hidden, h_mask, step_mask, outputs, states, gates, activated, *weights
            )
            ctx.nodes, ctx.concat = all_nodes, concat
        return outputs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_outputs):
        x_projection, hidden, w_hidden, h_mask, step_mask, outputs, states, gates, activated, *weights = (
            ctx.saved_tensors
        )
        nodes, all_weights = ctx.nodes, (w_hidden, *weights)  # the initial node first, as in the forward pass
        time, num_states = states.shape[:2]
        hidden_size = hidden.shape[-1]
        previous = torch.cat([hidden[None], outputs[:-1]])  # h_{t-1} of every step
        # gradients of each node's projection [c, h] at every step, for the weight gradients at the end
        projection_grads = x_projection.new_empty(num_states, *x_projection.shape)
        state_grads = torch.empty_like(states[0])
        carried = torch.zeros_like(hidden)  # d loss / d h_t from the steps after t
        for t in reversed(range(time)):
            grad = grad_outputs[t] + carried
            kept = grad if step_mask is None else grad * step_mask[t, :, None]
            state_grads.zero_()
            state_grads[list(ctx.concat)] += kept / len(ctx.concat)
            carried = grad - kept  # where a stream's state stayed unchanged, its gradient passes on
            for i in reversed(range(num_states)):
                name, source = nodes[i]
                s_prev = previous[t] if source is None else states[t, source]
                c, g, ds = gates[t, i], activated[t, i], state_grads[i]
                c_grad = projection_grads[i, t, :, :hidden_size]
                h_grad = projection_grads[i, t, :, hidden_size:]
                torch.sub(g, s_prev, out=c_grad).mul_(ds).mul_(c * (1 - c))
                torch.mul(ds, c, out=h_grad).mul_(_activation_derivative(name, g))
                through = torch.mm(projection_grads[i, t], all_weights[i].t())
                if h_mask is not None:
                    through.mul_(h_mask)
                through.addcmul_(ds, 1 - c)
                if source is None:
                    carried += through
                else:
                    state_grads[source] += through
        sources = [previous if source is None else states[:, source] for _, source in nodes]
        weight_grads = []
        for source, projection_grad in zip(sources, projection_grads):
            masked = source * h_mask if h_mask is not None else source
            weight_grads.append(torch.mm(masked.reshape(-1, hidden_size).t(), projection_grad.flatten(0, 1)))
        return projection_grads[0], carried, weight_grads[0], None, None, None, None, *weight_grads[1:]


def highway_recurrence(
    x_projection: torch.Tensor,
    hidden: torch.Tensor,
    w_hidden: torch.Tensor,
    weights,
    nodes: tuple,
    concat: tuple,
    h_mask: torch.Tensor | None = None,
    step_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The cell's outputs `[time, batch, hidden]`; see `HighwayRecurrence`. Under autocast, in its lower precision
    (as autocast would run the matrix products and what follows them)."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x_projection, hidden, w_hidden, h_mask = (
            t.to(dtype) if t is not None else None for t in (x_projection, hidden, w_hidden, h_mask)
        )
        weights = [weight.to(dtype) for weight in weights]
    with torch.autocast(device, enabled=False):
        return HighwayRecurrence.apply(x_projection, hidden, w_hidden, nodes, concat, h_mask, step_mask, *weights)


def mixed_highway_steps(x_projection, hidden, w_hidden, edge_weights, h_mask, weights, normalize):
    """The recurrent search cell over a sequence, step by step under autograd: the initial node, then every node
    the weighted sum, over its inputs j and the candidate activations k, of w_jk (s_j + c_j (f_k(h_j) - s_j)),
    followed by `normalize` (BatchNorm without an affine map). Since sum_k w_jk (s + c (f_k - s)) = W_j s +
    c (sum_k w_jk f_k - W_j s) with W_j = sum_k w_jk, each input gets one highway update ('none' only lowers W_j).
    `edge_weights` [edges, 4]: the softmax of the alphas of `RECURRENT_OPERATIONS` (without 'none'). Returns
    [time, batch, hidden]."""
    hidden_size = hidden.shape[-1]
    kept_weights = edge_weights.sum(1)[:, None, None]
    outputs = []
    for projection in x_projection:
        masked = hidden * h_mask if h_mask is not None else hidden
        c0, h0 = (projection + masked @ w_hidden).split(hidden_size, dim=-1)
        states = normalize(hidden + c0.sigmoid() * (h0.tanh() - hidden))[None]  # [nodes so far, batch, hidden]
        for node, weight in enumerate(weights, start=1):
            edges = _edges(node)
            masked = states * h_mask if h_mask is not None else states
            c, h = (masked @ weight).split(hidden_size, dim=-1)
            c = c.sigmoid()
            w = edge_weights[edges, :, None, None]
            mixed = sum(w[:, k] * ACTIVATIONS[name](h) for k, name in enumerate(RECURRENT_OPERATIONS))
            kept = kept_weights[edges] * states
            states = torch.cat([states, normalize((kept + c * (mixed - kept)).sum(0))[None]])
        hidden = states[1:].mean(0)
        outputs.append(hidden)
    return torch.stack(outputs)


def _edges(node: int) -> slice:
    """The edges into `node` (1-based: node i has the i states before it as inputs)."""
    return slice(node * (node - 1) // 2, node * (node + 1) // 2)


class BatchStatistics:
    """The affine-free BatchNorm of the search cell as `MixedHighwayRecurrence` computes it: in training, batch
    statistics, moving `bn`'s running statistics in place as `nn.BatchNorm1d` does; in evaluation the running ones."""

    def __init__(self, bn: torch.nn.BatchNorm1d):
        self.training, self.momentum, self.eps = bn.training, bn.momentum, bn.eps
        self.running_mean, self.running_var = bn.running_mean, bn.running_var

    def normalize(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_hat and 1 / sqrt(variance + eps) of `u` [batch, hidden]."""
        if self.training:
            variance, mean = torch.var_mean(u, dim=0, correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(variance * len(u) / max(len(u) - 1, 1), self.momentum)
            invstd = torch.rsqrt(variance + self.eps)
        else:
            mean, invstd = self.running_mean, torch.rsqrt(self.running_var + self.eps)
        return (u - mean) * invstd, invstd

    def backward(self, grad: torch.Tensor, x_hat: torch.Tensor, invstd: torch.Tensor) -> torch.Tensor:
        """The gradient of `u` from that of x_hat."""
        if not self.training:
            return grad * invstd
        return (grad - grad.mean(0) - x_hat * (grad * x_hat).mean(0)).mul_(invstd)

    def differentiable(self, u: torch.Tensor) -> torch.Tensor:
        """x_hat under autograd, the running statistics left alone (the recomputation for a differentiated backward)."""
        if self.training:
            return torch.nn.functional.batch_norm(u, None, None, training=True, eps=self.eps)
        return torch.nn.functional.batch_norm(u, self.running_mean, self.running_var, training=False, eps=self.eps)


def _mixed_node(projection, tanh_h, sigmoid_h, inputs, edge_weights, statistics, out, invstd):
    """Writes x_hat and 1 / std of a node into `out` and `invstd`, from its inputs' projections [n, batch, 2 hidden]
    (rows [c, h], c through its sigmoid), tanh(h), sigmoid(h) and states `inputs` [n, batch, hidden], and their edge
    weights [n, 4]: one pass of `mixed_node.cpp` on the CPU."""
    kernels = load_kernels("mixed_node") if inputs.device.type == "cpu" else None
    if kernels is not None:
        kernels.mixed_node_forward(
            projection, tanh_h, sigmoid_h, inputs, edge_weights.contiguous(), statistics.running_mean,
            statistics.running_var, statistics.training, statistics.momentum, statistics.eps, out, invstd,
        )  # fmt: skip
        return
    c, h = projection.chunk(2, dim=-1)
    w = edge_weights[:, :, None, None]
    mixed = w[:, 0] * tanh_h + w[:, 1] * h.clamp(min=0) + w[:, 2] * sigmoid_h + w[:, 3] * h
    kept = edge_weights.sum(1)[:, None, None] * inputs
    x_hat, node_invstd = statistics.normalize((mixed - kept).mul_(c).add_(kept).sum(0))
    out.copy_(x_hat)
    invstd.copy_(node_invstd)


def _mixed_node_backward(
    grad,
    x_hat,
    invstd,
    projection,
    tanh_h,
    sigmoid_h,
    inputs,
    edge_weights,
    statistics,
    out,
    state_grads,
    weight_grads,
):
    """`_mixed_node`'s backward from the gradient of x_hat: writes the gradients of the inputs' [c, h] projections
    (before the gate's sigmoid) into `out` [n, batch, 2 hidden], adds the inputs' gradients through their kept share
    to `state_grads` and the edge weights' gradient to `weight_grads` [n, 4]."""
    kernels = load_kernels("mixed_node") if inputs.device.type == "cpu" else None
    if kernels is not None:
        kernels.mixed_node_backward(
            grad, x_hat, invstd, statistics.training, projection, tanh_h, sigmoid_h, inputs,
            edge_weights.contiguous(), out, state_grads, weight_grads,
        )  # fmt: skip
        return
    c, h = projection.chunk(2, dim=-1)
    hidden_size = h.shape[-1]
    u_grad = statistics.backward(grad, x_hat, invstd)
    w = edge_weights[:, :, None, None]
    kept_weights = edge_weights.sum(1)[:, None, None]
    activated = (tanh_h, h.clamp(min=0), sigmoid_h, h)
    mixed = sum(w[:, k] * f for k, f in enumerate(activated))
    torch.sub(mixed, kept_weights * inputs, out=out[..., :hidden_size]).mul_(u_grad).mul_(c * (1 - c))
    mixed_grad = u_grad * c
    slope = w[:, 0] * (1 - tanh_h * tanh_h) + w[:, 1] * (h > 0) + w[:, 2] * sigmoid_h * (1 - sigmoid_h) + w[:, 3]
    torch.mul(mixed_grad, slope, out=out[..., hidden_size:])
    kept_grad = u_grad * (1 - c)
    state_grads.addcmul_(kept_grad, kept_weights)
    weight_grads += torch.stack([(mixed_grad * f).sum((1, 2)) for f in activated], 1)
    weight_grads += (kept_grad * inputs).sum((1, 2))[:, None]


class MixedHighwayRecurrence(torch.autograd.Function):
    """`mixed_highway_steps` with its backward pass through time written out (the same mathematics, tested against
    it). Kept for the backward pass: the normalised states and 1 / std of every node, and the gate c, pre-activation
    h, tanh(h) and sigmoid(h) of every edge (all a step's edges' [c, h] come from one product per node, written in
    place); the weight gradients are one product per weight over all time steps. A
    backward pass that is itself differentiated (`--hessian exact`) recomputes the sequence with `mixed_highway_steps`
    and differentiates that."""

    @staticmethod
    def forward(ctx, x_projection, hidden, w_hidden, edge_weights, h_mask, statistics, *weights):
        time, batch, hidden_size = x_projection.shape[0], *hidden.shape
        num_nodes = len(weights)
        saving = any(ctx.needs_input_grad)
        kept_steps = time if saving else 1
        states = hidden.new_empty(kept_steps, num_nodes + 1, batch, hidden_size)
        invstds = hidden.new_empty(kept_steps, num_nodes + 1, hidden_size)
        initial_gates, initial_activations = hidden.new_empty(2, kept_steps, batch, hidden_size)
        # per edge: the projection [c, h] (c through its sigmoid, in place), tanh(h), sigmoid(h)
        projections = hidden.new_empty(kept_steps, len(edge_weights), batch, 2 * hidden_size)
        tanhs, sigmoids = hidden.new_empty(2, kept_steps, len(edge_weights), batch, hidden_size)
        outputs = hidden.new_empty(time, batch, hidden_size)
        for t in range(time):
            k = t if saving else 0
            h_prev = outputs[t - 1] if t else hidden
            masked = h_prev * h_mask if h_mask is not None else h_prev
            projection = torch.addmm(x_projection[t], masked, w_hidden)
            c0 = torch.sigmoid(projection[:, :hidden_size], out=initial_gates[k])
            g0 = torch.tanh(projection[:, hidden_size:], out=initial_activations[k])
            states[k, 0], invstds[k, 0] = statistics.normalize(torch.sub(g0, h_prev).mul_(c0).add_(h_prev))
            for node, weight in enumerate(weights, start=1):
                edges, inputs = _edges(node), states[k, :node]
                masked = inputs * h_mask if h_mask is not None else inputs
                projection = projections[k, edges]
                torch.mm(masked.reshape(-1, hidden_size), weight, out=projection.view(-1, 2 * hidden_size))
                projection[..., :hidden_size].sigmoid_()
                h = projection[..., hidden_size:]
                _mixed_node(
                    projection,
                    torch.tanh(h, out=tanhs[k, edges]),
                    torch.sigmoid(h, out=sigmoids[k, edges]),
                    inputs,
                    edge_weights[edges],
                    statistics,
                    out=states[k, node],
                    invstd=invstds[k, node],
                )
            torch.mean(states[k, 1:], dim=0, out=outputs[t])
        if saving:
            ctx.save_for_backward(
                x_projection, hidden, w_hidden, edge_weights, h_mask, outputs, states, invstds,
                initial_gates, initial_activations, projections, tanhs, sigmoids, *weights,
            )  # fmt: skip
            ctx.statistics = statistics
        return outputs

    @staticmethod
    def backward(ctx, grad_outputs):
        (
            x_projection, hidden, w_hidden, edge_weights, h_mask, outputs, states, invstds,
            initial_gates, initial_activations, projections, tanhs, sigmoids, *weights,
        ) = ctx.saved_tensors  # fmt: skip
        if torch.is_grad_enabled():
            inputs = (x_projection, hidden, w_hidden, edge_weights, None, None, *weights)
            return _differentiated_again(ctx, grad_outputs, inputs, h_mask)
        time, num_states, batch, hidden_size = states.shape
        statistics = ctx.statistics
        weights_need_grad = any(ctx.needs_input_grad[6:])
        previous = torch.cat([hidden[None], outputs[:-1]])  # h_{t-1} of every step
        initial_projection_grads = torch.empty_like(x_projection)
        # the gradients of every edge's [c, h] (at every step when the weights need their gradients)
        edge_projection_grads = torch.empty_like(projections[: time if weights_need_grad else 1])
        edge_weight_grads = torch.zeros_like(edge_weights)
        state_grads = torch.empty_like(states[0])
        carried = torch.zeros_like(hidden)  # d loss / d h_t from the steps after t
        for t in reversed(range(time)):
            k = t if weights_need_grad else 0
            state_grads[0].zero_()
            state_grads[1:] = (grad_outputs[t] + carried) / (num_states - 1)
            for node in reversed(range(1, num_states)):
                edges = _edges(node)
                projection_grad = edge_projection_grads[k, edges]
                _mixed_node_backward(
                    state_grads[node], states[t, node], invstds[t, node], projections[t, edges], tanhs[t, edges],
                    sigmoids[t, edges], states[t, :node], edge_weights[edges], statistics,
                    out=projection_grad, state_grads=state_grads[:node], weight_grads=edge_weight_grads[edges],
                )  # fmt: skip
                through = (projection_grad.reshape(-1, 2 * hidden_size) @ weights[node - 1].t()).view(
                    node, batch, hidden_size
                )
                if h_mask is not None:
                    state_grads[:node].addcmul_(through, h_mask)
                else:
                    state_grads[:node] += through
            u_grad = statistics.backward(state_grads[0], states[t, 0], invstds[t, 0])
            c0, g0, h_prev = initial_gates[t], initial_activations[t], previous[t]
            projection_grad = initial_projection_grads[t]
            torch.sub(g0, h_prev, out=projection_grad[:, :hidden_size]).mul_(u_grad).mul_(c0 * (1 - c0))
            torch.mul(u_grad, c0, out=projection_grad[:, hidden_size:]).mul_(1 - g0 * g0)
            carried = projection_grad @ w_hidden.t()
            if h_mask is not None:
                carried.mul_(h_mask)
            carried.addcmul_(u_grad, 1 - c0)

        def weight_grad(inputs, projection_grads):
            masked = inputs * h_mask if h_mask is not None else inputs
            return masked.reshape(-1, hidden_size).t() @ projection_grads.reshape(-1, 2 * hidden_size)

        weight_grads = [None] * len(weights)
        if weights_need_grad:
            weight_grads = [
                weight_grad(states[:, :node], edge_projection_grads[:, _edges(node)]) for node in range(1, num_states)
            ]
        w_hidden_grad = weight_grad(previous, initial_projection_grads) if ctx.needs_input_grad[2] else None
        return initial_projection_grads, carried, w_hidden_grad, edge_weight_grads, None, None, *weight_grads


def _differentiated_again(ctx, grad_outputs, inputs, h_mask):
    """The input gradients as differentiable functions of the inputs (`MixedHighwayRecurrence.forward`'s, None where
    not a tensor), by recomputing the sequence under autograd."""
    x_projection, hidden, w_hidden, edge_weights, _, _, *weights = inputs
    differentiated = [i for i, tensor in enumerate(inputs) if tensor is not None and ctx.needs_input_grad[i]]
    outputs = mixed_highway_steps(
        x_projection, hidden, w_hidden, edge_weights, h_mask, weights, ctx.statistics.differentiable
    )
    grads = torch.autograd.grad(
        outputs, [inputs[i] for i in differentiated], grad_outputs, create_graph=True, allow_unused=True
    )
    result = [None] * len(inputs)
    for i, grad in zip(differentiated, grads):
        result[i] = grad
    return tuple(result)


def mixed_highway_recurrence(x_projection, hidden, w_hidden, edge_weights, h_mask, weights, bn):
    """The recurrent search cell's outputs [time, batch, hidden]: `MixedHighwayRecurrence`, or, under autocast (whose
    casts it does not make), `mixed_highway_steps` with `bn` itself."""
    if torch.is_autocast_enabled(hidden.device.type):
        return mixed_highway_steps(x_projection, hidden, w_hidden, edge_weights, h_mask, weights, bn)
    statistics = BatchStatistics(bn)
    outputs = MixedHighwayRecurrence.apply(x_projection, hidden, w_hidden, edge_weights, h_mask, statistics, *weights)
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(len(x_projection) * (len(weights) + 1))
    return outputs
