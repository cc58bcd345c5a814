"""The DARTS recurrent cell over a whole sequence, with its backward pass through time written out.

Run step by step under autograd, the cell's weight gradients are 9 outer products per time step (`[hidden, batch]
@ [batch, 2 hidden]`, written to memory and added up: 315 of them for a 35-token chunk), and autograd keeps every
intermediate of every node. Here the forward pass keeps only the states, gates and activations of each node; the
backward pass walks the time steps back computing only what is sequential (the gradients of the states), and the
weight gradients come at the end as one matrix product per weight over all time steps (`[hidden, time x batch] @
[time x batch, 2 hidden]`), which runs at the machine's matrix speed. The input's half of the initial node's
projection does not depend on the recurrence and is one product over the whole sequence, outside.

The same mathematics as the step-by-step cell (tested against it: outputs, last state and every gradient). Not
differentiable twice (nothing needs that: the recurrent search has its own cell).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


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
        for t in range(time):
            k = t if saving else 0
            h_prev = outputs[t - 1] if t else hidden
            all_weights = (w_hidden, *weights)
            all_nodes = (("tanh", None), *nodes)
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
            ctx.nodes, ctx.concat = nodes, concat
        return outputs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_outputs):
        x_projection, hidden, w_hidden, h_mask, step_mask, outputs, states, gates, activated, *weights = (
            ctx.saved_tensors
        )
        nodes = (("tanh", None), *ctx.nodes)
        all_weights = (w_hidden, *weights)
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
        sources = [previous, *(states[:, source] for _, source in ctx.nodes)]
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
