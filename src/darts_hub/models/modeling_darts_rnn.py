"""DARTS recurrent language models as transformers models (Sec. 3.2 of the paper; the AWD-LSTM training setup).

The cell: an initial highway node mixing x_t and h_{t-1}, then every genotype node
s = s_prev + sigmoid(c) * (f(h) - s_prev) with [c, h] = s_prev W_i and f the node's activation; the new hidden state
is the mean of the concatenated nodes. Dropout as the original: variational (one mask per sequence) on x and h inside
the cell, locked dropout on the embeddings and the outputs, and word dropout on the embedding matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_darts_rnn import DartsRNNConfig


ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


def variational_mask(reference: torch.Tensor, shape: tuple[int, ...], drop_prob: float) -> torch.Tensor:
    """A dropout mask (already scaled by 1 / keep) of `shape`, on `reference`'s device and dtype."""
    keep = 1.0 - drop_prob
    return reference.new_empty(shape).bernoulli_(keep).div_(keep)


class DartsRNNCell(nn.Module):
    """The DARTS recurrent cell, run over a whole sequence."""

    def __init__(self, config: DartsRNNConfig, num_nodes: int | None = None):
        """The nodes come from the config's genotype, or, for the search cell, `num_nodes` are given."""
        super().__init__()
        self.genotype = config.get_genotype() if num_nodes is None else None
        num_nodes = self.genotype.num_nodes if num_nodes is None else num_nodes
        hidden = config.hidden_size
        self.hidden_size = hidden
        self.dropout_x, self.dropout_h = config.dropout_x, config.dropout_h
        # [x, h] -> [c, h] of the initial node, then one [c, h] projection per node.
        self.w0 = nn.Parameter(torch.empty(2 * hidden, 2 * hidden))
        self.ws = nn.ParameterList(nn.Parameter(torch.empty(hidden, 2 * hidden)) for _ in range(num_nodes))

    def dropout_masks(self, inputs: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The variational dropout masks of x and h, one per sequence, in training (None otherwise)."""
        if not self.training:
            return None, None
        batch = inputs.shape[0]
        return (
            variational_mask(inputs, (batch, inputs.shape[-1]), self.dropout_x),
            variational_mask(inputs, (batch, self.hidden_size), self.dropout_h),
        )

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor, step_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs: [batch, time, hidden]; hidden: [batch, hidden]; step_mask: [batch, time], 0 where the state must
        stay unchanged (left padding). Returns the outputs [batch, time, hidden] and the last state [batch, hidden]."""
        return self.run_over_time(inputs, hidden, self.step, step_mask)

    def run_over_time(self, inputs, hidden, step, step_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence: `step(x_t, h_{t-1}, x_mask, h_mask)` gives h_t, with the same dropout masks at every step;
        where `step_mask` is 0 the state stays unchanged."""
        x_mask, h_mask = self.dropout_masks(inputs)
        outputs = []
        for t in range(inputs.shape[1]):
            new_hidden = step(inputs[:, t], hidden, x_mask, h_mask)
            if step_mask is not None:
                new_hidden = torch.where(step_mask[:, t, None].bool(), new_hidden, hidden)
            hidden = new_hidden
            outputs.append(hidden)
        return torch.stack(outputs, 1), hidden

    def initial_node(self, x, hidden, x_mask, h_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """The gate c0 and candidate h0 of the initial node: [c0, h0] = [x_t, h_{t-1}] W0 (dropout applied)."""
        if x_mask is not None:
            x, hidden = x * x_mask, hidden * h_mask
        c0, h0 = (torch.cat([x, hidden], dim=-1) @ self.w0).chunk(2, dim=-1)
        return c0.sigmoid(), h0.tanh()

    def step(self, x, hidden, x_mask, h_mask) -> torch.Tensor:
        """One time step: the initial node, then every genotype node as a highway update of its source state
        s = s_prev + c (f(h) - s_prev) with [c, h] = s_prev W_i; h_t is the mean of the `concat` states."""
        c0, h0 = self.initial_node(x, hidden, x_mask, h_mask)
        states = [hidden + c0 * (h0 - hidden)]
        for weight, (name, source) in zip(self.ws, self.genotype.recurrent):
            s_prev = states[source]
            c, h = ((s_prev * h_mask if h_mask is not None else s_prev) @ weight).chunk(2, dim=-1)
            states.append(s_prev + c.sigmoid() * (ACTIVATIONS[name](h) - s_prev))
        return torch.stack([states[i] for i in self.genotype.concat]).mean(0)


def embed_with_dropout(model, input_ids: torch.Tensor) -> torch.Tensor:
    """`model.encoder` embeddings with word dropout (whole rows of the embedding, the same words everywhere in the
    batch) and locked dropout, in training; `model` has `encoder`, `lockdrop` and a config with the dropouts."""
    weight = model.encoder.weight
    if model.training and model.config.dropout_e > 0:
        weight = weight * variational_mask(weight, (weight.shape[0], 1), model.config.dropout_e)
    return model.lockdrop(nn.functional.embedding(input_ids, weight), model.config.dropout_i)


def activation_slowness(cell_outputs: torch.Tensor) -> torch.Tensor:
    """Temporal activation regularisation (AWD-LSTM's, used by the original search and training, weighted by beta):
    the mean squared change of the cell's outputs `[batch, time, hidden]` from one step to the next."""
    return (cell_outputs[:, 1:] - cell_outputs[:, :-1]).pow(2).mean()


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all time steps ([batch, time, features] inputs)."""

    def forward(self, x: torch.Tensor, drop_prob: float) -> torch.Tensor:
        if not self.training or drop_prob == 0.0:
            return x
        return x * variational_mask(x, (x.shape[0], 1, x.shape[2]), drop_prob)


@dataclass
class DartsRNNModelOutput(BaseModelOutputWithPast):
    """
    hidden_state (`torch.Tensor` of shape `(batch_size, hidden_size)`):
        The recurrent state after the last token, to carry into the next chunk of a stream.
    """

    hidden_state: torch.Tensor | None = None


@dataclass
class DartsRNNCausalLMOutput(CausalLMOutputWithPast):
    """
    hidden_state (`torch.Tensor` of shape `(batch_size, hidden_size)`):
        The recurrent state after the last token, to carry into the next chunk of a stream.
    """

    hidden_state: torch.Tensor | None = None


def init_recurrent_weights(module: nn.Module, bound: float) -> None:
    """The original initialisation: embedding, cell and decoder weights uniform in +-bound (0.04), zero decoder
    bias."""
    if isinstance(module, nn.Embedding):
        init.uniform_(module.weight, -bound, bound)
    elif isinstance(module, DartsRNNCell):
        init.uniform_(module.w0, -bound, bound)
        for weight in module.ws:
            init.uniform_(weight, -bound, bound)
    elif isinstance(module, nn.Linear):
        init.uniform_(module.weight, -bound, bound)
        if module.bias is not None:
            init.zeros_(module.bias)


class DartsRNNPreTrainedModel(PreTrainedModel):
    config: DartsRNNConfig
    config_class = DartsRNNConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("text",)
    _no_split_modules = ["DartsRNNCell"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        init_recurrent_weights(module, self.config.init_range)


class DartsRNNModel(DartsRNNPreTrainedModel):
    """Embedding (with word and locked dropout) and the recurrent cell; returns the cell's outputs."""

    def __init__(self, config: DartsRNNConfig):
        super().__init__(config)
        self.encoder = nn.Embedding(config.vocab_size, config.hidden_size)
        self.lockdrop = LockedDropout()
        self.cell = DartsRNNCell(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder = value

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return embed_with_dropout(self, input_ids)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        hidden_state: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """`hidden_state` [batch, hidden] starts the recurrence (zeros by default); with a cache (generation), the
        state is read from and written to its recurrent slot. `output_hidden_states` adds `hidden_states`: the
        (dropped-out) embeddings and the cell's outputs, the latter for the training's activation regularisation."""
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids holds no tokens: the sequence length must be at least 1.")
        if cache is not None and cache.layers[0].is_recurrent_states_initialized[0]:
            hidden_state = cache.layers[0].recurrent_states[0].clone()  # the slot is overwritten in place below
        if hidden_state is None:
            hidden_state = self.encoder.weight.new_zeros(input_ids.shape[0], self.config.hidden_size)
        # During generation the mask covers every position so far; the cell needs the columns of these tokens.
        step_mask = attention_mask[:, -input_ids.shape[1] :] if attention_mask is not None else None
        embedded = self.embed(input_ids)
        outputs, last = self.cell(embedded, hidden_state, step_mask)
        if cache is not None:
            cache.update_recurrent_state(last, 0)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        return DartsRNNModelOutput(
            last_hidden_state=outputs,
            cache=cache,
            hidden_states=(embedded, outputs) if output_hidden_states else None,
            hidden_state=last,
        )


class DartsRNNForCausalLM(DartsRNNPreTrainedModel, GenerationMixin):
    """The language model: the cell's outputs, locked dropout, and a decoder tied to the embedding."""

    _tied_weights_keys = {"decoder.weight": "model.encoder.weight"}

    def __init__(self, config: DartsRNNConfig):
        super().__init__(config)
        self.model = DartsRNNModel(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.decoder = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        hidden_state: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> DartsRNNCausalLMOutput:
        """`labels` follow the transformers convention (shifted inside, -100 ignored); streams that predict the token
        after each position compute their loss from `logits` instead."""
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            hidden_state=hidden_state,
            cache=cache,
            output_hidden_states=output_hidden_states,
        )
        logits = self.decoder(self.model.lockdrop(outputs.last_hidden_state, self.config.dropout))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return DartsRNNCausalLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            hidden_state=outputs.hidden_state,
        )


__all__ = [
    "ACTIVATIONS",
    "activation_slowness",
    "embed_with_dropout",
    "init_recurrent_weights",
    "DartsRNNCausalLMOutput",
    "DartsRNNCell",
    "DartsRNNForCausalLM",
    "DartsRNNModel",
    "DartsRNNModelOutput",
    "DartsRNNPreTrainedModel",
    "LockedDropout",
]
