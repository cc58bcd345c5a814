"""The recurrent search supernet of DARTS (Sec. 2.1 and 3.1.2 of the paper).

Every node of the cell may take any earlier state as input; each (node, input) edge is the softmax(alpha)-weighted
sum of the candidate activations applied in the cell's highway form. BatchNorm without affine parameters follows the
initial node and every node, as in the original search. The 36 x 5 architecture weights are parameters of the model.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init

from .genotypes import RECURRENT_OPERATIONS, RECURRENT_PRIMITIVES, RecurrentGenotype, derive_recurrent_genotype
from .modeling_darts_rnn import (
    ACTIVATIONS,
    DartsRNNCausalLMOutput,
    DartsRNNCell,
    LockedDropout,
    embed_with_dropout,
    init_recurrent_weights,
)


class DartsRNNSearchConfig(PreTrainedConfig):
    r"""
    Configuration of the recurrent search supernet; defaults are the paper's PTB search (sizes 300, 8 nodes,
    dropouts 0.75 / h 0.25 / x 0.75 / i 0.2 / e 0).

    Args:
        vocab_size (`int`, *optional*, defaults to 10000), hidden_size (`int`, *optional*, defaults to 300),
        num_nodes (`int`, *optional*, defaults to 8): nodes of the cell (all averaged into the output),
        dropout, dropout_h, dropout_x, dropout_i, dropout_e (`float`): as in `DartsRNNConfig`,
        init_range (`float`, *optional*, defaults to 0.04), alpha_init_std (`float`, *optional*, defaults to 1e-3).
    """

    model_type = "darts_rnn_search"

    vocab_size: int = 10000
    hidden_size: int = 300
    num_nodes: int = 8
    dropout: float = 0.75
    dropout_h: float = 0.25
    dropout_x: float = 0.75
    dropout_i: float = 0.2
    dropout_e: float = 0.0
    init_range: float = 0.04
    alpha_init_std: float = 1e-3
    tie_word_embeddings: bool = True

    @property
    def num_edges(self) -> int:
        return self.num_nodes * (self.num_nodes + 1) // 2


class DartsRNNSearchCell(DartsRNNCell):
    """The cell with every edge mixed, weighted by the softmax of the alphas."""

    def __init__(self, config: DartsRNNSearchConfig):
        super().__init__(config, num_nodes=config.num_nodes)
        self.bn = nn.BatchNorm1d(config.hidden_size, affine=False)
        self.op_columns = [RECURRENT_PRIMITIVES.index(name) for name in RECURRENT_OPERATIONS]

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor):
        """inputs: [batch, time, hidden]; hidden: [batch, hidden]; weights: the softmax of the alphas [edges,
        primitives]. Returns the outputs [batch, time, hidden] and the last state [batch, hidden]."""
        return self.run_over_time(inputs, hidden, lambda *step_inputs: self.step(*step_inputs, weights=weights))

    def step(self, x, hidden, x_mask, h_mask, weights) -> torch.Tensor:
        """One time step: the initial node, then node i as the weighted sum, over every earlier state s_j and every
        candidate activation f_k, of w_jk (s_j + c_j (f_k(h_j) - s_j)) with [c_j, h_j] = s_j W_i ('none' adds
        nothing), each node normalised by the affine-free BatchNorm; h_t is the mean of the nodes."""
        c0, h0 = self.initial_node(x, hidden, x_mask, h_mask)
        states = [self.bn(hidden + c0 * (h0 - hidden))]
        edge = 0
        for weight in self.ws:
            node = 0
            for s_prev in states:  # the node is appended after its inputs are read
                c, h = ((s_prev * h_mask if h_mask is not None else s_prev) @ weight).chunk(2, dim=-1)
                c = c.sigmoid()
                for column, name in zip(self.op_columns, RECURRENT_OPERATIONS):
                    node = node + weights[edge, column] * (s_prev + c * (ACTIVATIONS[name](h) - s_prev))
                edge += 1
            states.append(self.bn(node))
        return torch.stack(states[1:]).mean(0)


class DartsRNNSearchModel(PreTrainedModel):
    """The search language model: embedding, the search cell, a tied decoder, and the architecture weights."""

    config: DartsRNNSearchConfig
    config_class = DartsRNNSearchConfig
    base_model_prefix = "darts_rnn_search"
    main_input_name = "input_ids"
    _tied_weights_keys = {"decoder.weight": "encoder.weight"}

    def __init__(self, config: DartsRNNSearchConfig):
        super().__init__(config)
        self.encoder = nn.Embedding(config.vocab_size, config.hidden_size)
        self.lockdrop = LockedDropout()
        self.cell = DartsRNNSearchCell(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.alphas = nn.ParameterDict({"recurrent": torch.empty(config.num_edges, len(RECURRENT_PRIMITIVES))})
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, ["alphas.recurrent"])
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if module is self.alphas:
            init.normal_(module["recurrent"], std=self.config.alpha_init_std)
        else:
            init_recurrent_weights(module, self.config.init_range)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas["recurrent"]]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(
        self,
        input_ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        hidden_state: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> DartsRNNCausalLMOutput:
        """`targets` [batch, steps] are the next token of each position (stream training); the loss is their mean
        cross-entropy. `hidden_state` carries the recurrence from the previous chunk. `output_hidden_states` adds
        the embeddings and the cell's outputs (for the activation regularisation)."""
        if hidden_state is None:
            hidden_state = self.encoder.weight.new_zeros(input_ids.shape[0], self.config.hidden_size)
        weights = torch.softmax(self.alphas["recurrent"], dim=-1)
        embedded = embed_with_dropout(self, input_ids)
        outputs, last = self.cell(embedded, hidden_state, weights=weights)
        logits = self.decoder(self.lockdrop(outputs, self.config.dropout))
        loss = None
        if targets is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        return DartsRNNCausalLMOutput(
            loss=loss,
            logits=logits,
            hidden_states=(embedded, outputs) if output_hidden_states else None,
            hidden_state=last,
        )

    def genotype(self) -> RecurrentGenotype:
        return derive_recurrent_genotype(self.alphas["recurrent"], num_nodes=self.config.num_nodes)


__all__ = ["DartsRNNSearchCell", "DartsRNNSearchConfig", "DartsRNNSearchModel"]
