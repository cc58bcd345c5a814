"""The convolutional search supernet of DARTS (Sec. 2.1-2.2 of the paper).

Every edge of a cell is a *mixed operation*: the softmax(alpha)-weighted sum of all candidate operations. The
architecture weights alpha (one row per edge, one column per candidate, shared by all normal cells and by all
reduction cells) are parameters of the model, saved with it, and trained by the architect on validation data while
the operation weights are trained on training data.

With `partial_channels` K > 1 the supernet is PC-DARTS's (Xu et al. 2020, arXiv:1907.05737): each mixed operation
sees 1/K of its input's channels, the rest bypass it, and the two are channel-shuffled; with `edge_normalization` each
node weighs its incoming edges by the softmax of their betas (also architecture weights), which the derived cell's
choice of inputs takes into account. K = 1 without edge normalisation is DARTS.

With `auxiliary_skip` every edge also adds its input (on a reduction edge, its factorized reduction) weighted by
the model's `auxiliary_skip_weight`, outside the softmax: DARTS- (Chu et al. 2021, arXiv:2009.01027). The search
decays that weight from 1 to 0, so that the skip connections need not win the softmax to carry the gradient.

`relaxation` chooses how the alphas weigh the candidates in training (`mixing_weights`):
- "softmax": DARTS's softmax (eq. 2).
- "gumbel": GDAS (Dong & Yang 2019, arXiv:1910.04465): per forward pass and edge, one operation sampled by the
  Gumbel-max trick on the log-softmax of the alphas at the model's `temperature`, as a hard one-hot weight whose
  gradient is the Gumbel-softmax's (straight through). Only the sampled operation of an edge runs; the others add
  their weight, zero in value, so that their alphas get a gradient, as in GDAS's code.
- "dirichlet": DrNAS (Chen et al. 2021, arXiv:2006.10355): the weights of each edge are a sample of the Dirichlet
  distribution with concentration `elu(alpha) + 1`, reparameterised (pathwise gradient).
- "sigmoid": FairDARTS (Chu et al. 2020, arXiv:1911.12126): each operation weighs the sigmoid of its alpha, so that
  the candidates of an edge no longer compete for one unit of weight (their exclusive competition is what lets skip
  connections crowd out the rest); the search adds a zero-one loss that pushes each weight to 0 or 1, and the
  genotype keeps, of each node's two strongest edges, those whose operation weighs at least `operation_threshold`.
  FairDARTS's space has no 'none' (with independent weights, "no edge" is a weight near 0).
In evaluation the samplers use their expected weights (the softmax, the Dirichlet mean) and sample nothing.

`search_space` "s1" to "s4" are RobustDARTS's spaces (Zela et al. 2020, arXiv:1909.09656), which give each edge its
own two or three candidates (`config.candidates`), built to make DARTS collapse; "darts" is the paper's space.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from .configuration_darts import STEMS, reduction_positions
from .genotypes import CNN_OPERATIONS, PRIMITIVES, SEARCH_SPACES, Genotype, derive_genotype
from .modeling_darts import cell_input_layers, cifar_stem, init_pytorch_default, stack_cells
from .ops import build_operation


class DartsSearchConfig(PreTrainedConfig):
    r"""
    Configuration of the DARTS convolutional search supernet. Defaults are the paper's CIFAR-10 search: 16 channels,
    8 cells (reductions at 1/3 and 2/3 of the depth), 4 intermediate nodes per cell, all 4 concatenated.

    Args:
        init_channels (`int`, *optional*, defaults to 16): channels of the first cells, doubled at each reduction.
        num_cells (`int`, *optional*, defaults to 8): number of cells.
        num_channels (`int`, *optional*, defaults to 3): channels of the input images.
        num_nodes (`int`, *optional*, defaults to 4): intermediate nodes per cell.
        multiplier (`int`, *optional*, defaults to 4): how many of the last nodes the cell output concatenates.
        stem_multiplier (`int`, *optional*, defaults to 3): the stem outputs `stem_multiplier * init_channels`.
        primitives (`list[str]`, *optional*): candidate operations; defaults to the paper's eight, `"none"` first.
        alpha_init_std (`float`, *optional*, defaults to 1e-3): alphas start as `alpha_init_std * N(0, 1)`.
        image_size (`int`, *optional*, defaults to 32): side of the input images.
        image_mean (`list[float]`, *optional*), image_std (`list[float]`, *optional*): normalisation of the data.
        partial_channels (`int`, *optional*, defaults to 1): PC-DARTS's K: the mixed operations see 1/K of the
            channels (the paper's 4 on CIFAR-10); 1 is DARTS.
        edge_normalization (`bool`, *optional*): PC-DARTS's edge normalisation (beta weights per edge); defaults to
            on when `partial_channels` > 1, off otherwise.
        auxiliary_skip (`bool`, *optional*, defaults to `False`): DARTS-'s auxiliary skip connection on every edge,
            weighted by the model's `auxiliary_skip_weight`.
        relaxation (`str`, *optional*, defaults to `"softmax"`): how the alphas weigh the candidates in training:
            `"softmax"` (DARTS), `"gumbel"` (GDAS's hard Gumbel sample), `"dirichlet"` (DrNAS's Dirichlet sample) or
            `"sigmoid"` (FairDARTS: independent sigmoid weights; `primitives` then default to the seven without
            `"none"`).
        operation_threshold (`float`, *optional*, defaults to 0.85): with `"sigmoid"`, the weight an operation needs
            to enter the genotype (FairDARTS's threshold).
        search_space (`str`, *optional*, defaults to `"darts"`): the candidates of each edge: `"darts"` (`primitives`
            on every edge) or RobustDARTS's `"s1"` to `"s4"` (4 nodes; `genotypes.SEARCH_SPACES`).
    """

    model_type = "darts_search"

    init_channels: int = 16
    num_cells: int = 8
    num_channels: int = 3
    num_nodes: int = 4
    multiplier: int = 4
    stem_multiplier: int = 3
    primitives: list[str] | None = None
    alpha_init_std: float = 1e-3
    image_size: int = 32
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    partial_channels: int = 1
    edge_normalization: bool | None = None
    auxiliary_skip: bool = False
    relaxation: str = "softmax"
    operation_threshold: float = 0.85  # FairDARTS's
    search_space: str = "darts"

    def __post_init__(self, **kwargs):
        self.primitives = list(self.primitives or (PRIMITIVES[1:] if self.relaxation == "sigmoid" else PRIMITIVES))
        if self.search_space not in SEARCH_SPACES:
            raise ValueError(f"search_space must be one of {list(SEARCH_SPACES)}, got {self.search_space!r}.")
        if self.search_space != "darts" and self.num_nodes != 4:
            raise ValueError(
                f"Search space {self.search_space} lists the candidates of a 4-node cell's 14 edges; got num_nodes "
                f"{self.num_nodes}. Use num_nodes 4, or search_space darts."
            )
        if self.relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {list(RELAXATIONS)}, got {self.relaxation!r}.")
        if not 0 <= self.operation_threshold <= 1:
            raise ValueError(f"operation_threshold is a sigmoid weight, in [0, 1]; got {self.operation_threshold}.")
        if self.partial_channels < 1 or self.init_channels % self.partial_channels:
            raise ValueError(
                f"partial_channels must divide init_channels ({self.init_channels}), got {self.partial_channels}."
            )
        if self.edge_normalization is None:
            self.edge_normalization = self.partial_channels > 1
        unknown = [op for op in self.primitives if op not in ("none",) + CNN_OPERATIONS]
        if unknown:
            raise ValueError(f"Unknown candidate operation(s) {unknown}; known: none, {', '.join(CNN_OPERATIONS)}.")
        if not 1 <= self.multiplier <= self.num_nodes:
            raise ValueError(f"multiplier must be in 1..num_nodes ({self.num_nodes}), got {self.multiplier}.")
        if self.init_channels < 2 or self.init_channels % 2:
            raise ValueError(f"init_channels must be even and positive, got {self.init_channels}.")
        reductions = len(self.reduction_cells)
        if self.image_size < 2**reductions:
            raise ValueError(
                f"Images of {self.image_size}x{self.image_size} pixels are too small for {self.num_cells} cells, which "
                f"halve the resolution {reductions} times: use images of at least {2**reductions}x{2**reductions}."
            )
        _, default_mean, default_std = STEMS["cifar"]
        default = [0.5] * self.num_channels
        self.image_mean = list(self.image_mean or (default_mean if self.num_channels == 3 else default))
        self.image_std = list(self.image_std or (default_std if self.num_channels == 3 else default))
        if self.id2label is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = 10
        super().__post_init__(**kwargs)

    @property
    def reduction_cells(self) -> tuple[int, ...]:
        return reduction_positions(self.num_cells)

    @property
    def candidates(self) -> dict[str, list[list[str]]]:
        """The candidate operations of each edge of the normal and the reduction cell: the columns of its alphas."""
        space = SEARCH_SPACES[self.search_space]
        if space is None:
            return {cell: [list(self.primitives)] * self.num_edges for cell in ("normal", "reduce")}
        return {cell: [list(names) for names in space[cell]] for cell in ("normal", "reduce")}

    def column_names(self, cell: str) -> list[str]:
        """Names for the alpha columns of `cell`: the operations where every edge has the same, else ordinals."""
        rows = self.candidates[cell]
        if all(row == rows[0] for row in rows):
            return rows[0]
        return [f"candidate {column + 1}" for column in range(len(rows[0]))]

    @property
    def num_edges(self) -> int:
        """Edges per cell: node i has i + 2 incoming edges."""
        return self.num_nodes * (self.num_nodes + 3) // 2


RELAXATIONS = ("softmax", "gumbel", "dirichlet", "sigmoid")


class MixedOp(nn.Module):
    """All candidate operations of one edge; the output is their alpha-weighted sum.

    'none' (the zero operation) is not built: its term is zero, so it costs nothing and only takes part in the
    softmax. Pooling is followed by an affine-free BatchNorm so that its scale is comparable with the others'.

    With `partial_channels` K > 1 (PC-DARTS) the operations see the first 1/K of the channels; the others bypass
    them (max-pooled on a reduction edge) and the two parts are channel-shuffled in K groups, so that the next
    operation sees other channels.

    With `auxiliary_skip` (DARTS-) the edge adds `skip_weight` times a skip connection of the channels the operations
    see (the identity, or on a reduction edge an affine-free factorized reduction, as their code), not scaled by
    the edge's weight: it is no candidate, only a path for the gradient.

    Given the `selected` column (GDAS's sample), only that operation runs (`sampled_output`).

    `pool_batch_norm=False` leaves the pooling bare, as NAS-Bench-201's search builds it.
    """

    def __init__(
        self,
        primitives: list[str],
        channels: int,
        stride: int,
        partial_channels: int = 1,
        auxiliary_skip: bool = False,
        pool_batch_norm: bool = True,
    ):
        super().__init__()
        self.partial_channels, self.stride = partial_channels, stride
        self.op_channels = channels // partial_channels
        self.ops = nn.ModuleDict()
        for name in primitives:
            if name == "none":
                continue
            op = build_operation(name, self.op_channels, stride, affine=False)
            if "pool" in name and pool_batch_norm:
                op = nn.Sequential(op, nn.BatchNorm2d(self.op_channels, affine=False))
            self.ops[name] = op
        self.op_columns = [primitives.index(name) for name in self.ops]
        self.auxiliary_skip = (
            build_operation("skip_connect", self.op_channels, stride, affine=False) if auxiliary_skip else None
        )

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        skip_weight: float | None = None,
        selected: int | None = None,
        **sum_options,
    ) -> torch.Tensor:
        """weights: [num_primitives], the softmax of this edge's alphas; edge_weight: the edge's normalised beta;
        skip_weight: the auxiliary skip connection's weight (with `auxiliary_skip`); selected: the one column to
        run (GDAS), or None for all; `sum_options` go to `weighted_sum`."""
        if edge_weight is not None:
            weights = weights * edge_weight
        if self.partial_channels == 1:
            seen, bypass = x, None
        else:
            seen, bypass = self.split_channels(x, edge_weight)
        if selected is None:
            mixed = self.weighted_sum(seen, weights, **sum_options)
        else:
            mixed = self.sampled_output(seen, weights, selected)
        mixed = self.with_auxiliary_skip(mixed, seen, skip_weight)
        if bypass is None:
            return mixed
        return channel_shuffle(torch.cat([mixed, bypass], dim=1), self.partial_channels)

    def sampled_output(self, x: torch.Tensor, weights: torch.Tensor, selected: int) -> torch.Tensor:
        """GDAS's edge: `weights[selected] * op_selected(x)` (zeros for 'none') plus the other weights, zero in
        value (a hard sample), which pass the gradient on to their alphas."""
        others = torch.cat([weights[:selected], weights[selected + 1 :]]).sum()
        if selected not in self.op_columns:  # 'none'
            return torch.zeros_like(x[:, :, :: self.stride, :: self.stride]) + others
        op = list(self.ops.values())[self.op_columns.index(selected)]
        return weights[selected] * op(x) + others

    def with_auxiliary_skip(self, mixed: torch.Tensor, x: torch.Tensor, skip_weight: float | None) -> torch.Tensor:
        """`mixed` plus `skip_weight` times the auxiliary skip connection of `x`, if the edge has one."""
        if self.auxiliary_skip is None:
            return mixed
        return mixed + skip_weight * self.auxiliary_skip(x)

    def weighted_sum(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_k weights[k] * op_k(x) over the operations built ('none' adds nothing)."""
        return sum(weights[column] * op(x) for column, op in zip(self.op_columns, self.ops.values()))

    def split_channels(self, x: torch.Tensor, edge_weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """PC-DARTS's split: the channels the operations see, and the others as they bypass them (halved by max
        pooling on a reduction edge, scaled by the edge's weight)."""
        seen, bypass = x[:, : self.op_channels], x[:, self.op_channels :]
        if self.stride == 2:
            bypass = nn.functional.max_pool2d(bypass, 2, 2, ceil_mode=True)
        return seen, bypass if edge_weight is None else bypass * edge_weight


def hard_gumbel_sample(alphas: torch.Tensor, temperature: float) -> torch.Tensor:
    """GDAS's sample of one operation per row (edge): the one-hot of the argmax of `(log_softmax(alphas) + g) / t`,
    g standard Gumbel noise, with the gradient of its softmax (straight-through). The noise comes from the global
    generator; a draw giving infinities is redrawn, as in GDAS's code."""
    while True:
        gumbels = -torch.empty_like(alphas).exponential_().log()
        probabilities = torch.softmax((torch.log_softmax(alphas, dim=-1) + gumbels) / temperature, dim=-1)
        if torch.isfinite(gumbels).all() and torch.isfinite(probabilities).all():
            break
    one_hot = torch.zeros_like(probabilities).scatter_(-1, probabilities.argmax(-1, keepdim=True), 1.0)
    return one_hot - probabilities.detach() + probabilities


def relax(alphas: torch.Tensor, relaxation: str, training: bool, temperature: float = 1.0) -> torch.Tensor:
    """The operation weights of the rows (edges) of `alphas`: their softmax (eq. 2), their sigmoid (FairDARTS), or in
    training with a sampling `relaxation` a sample (GDAS's hard Gumbel at `temperature`, DrNAS's Dirichlet; in
    evaluation the softmax and the Dirichlet mean)."""
    if relaxation == "gumbel" and training:
        return hard_gumbel_sample(alphas, temperature)
    if relaxation == "dirichlet":
        concentration = nn.functional.elu(alphas) + 1
        if training:
            return torch.distributions.Dirichlet(concentration).rsample()
        return concentration / concentration.sum(-1, keepdim=True)
    if relaxation == "sigmoid":
        return torch.sigmoid(alphas)
    return torch.softmax(alphas, dim=-1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` equal groups (ShuffleNet's shuffle): channel j of group g moves to
    position j * groups + g. The result keeps the layout of `x` (channels-last or not), as the operations do."""
    batch, channels, height, width = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        pixels = x.permute(0, 2, 3, 1).reshape(batch, height, width, groups, channels // groups).transpose(3, 4)
        return pixels.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
    shuffled = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return shuffled.reshape(batch, channels, height, width)


def node_softmax(betas: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """PC-DARTS's edge normalisation: the softmax of the betas over each node's incoming edges (node i owns the
    i + 2 entries after those of the nodes before it)."""
    sizes = [node + 2 for node in range(num_nodes)]
    return torch.cat([torch.softmax(part, dim=-1) for part in betas.split(sizes)])


class SearchCell(nn.Module):
    """A cell whose every possible edge (node i <- each earlier state) is a MixedOp."""

    def __init__(
        self, config: DartsSearchConfig, prev_prev_channels, prev_channels, channels, reduction, reduction_prev
    ):
        super().__init__()
        candidates = config.candidates["reduce" if reduction else "normal"]
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = cell_input_layers(
            prev_prev_channels, prev_channels, channels, reduction_prev, affine=False
        )
        self.edges = nn.ModuleList(
            MixedOp(
                names, channels, 2 if reduction and source < 2 else 1, config.partial_channels, config.auxiliary_skip
            )
            for names, source in zip(
                candidates, (source for node in range(config.num_nodes) for source in range(node + 2))
            )
        )
        self.num_nodes, self.multiplier = config.num_nodes, config.multiplier
        self.out_channels = channels * config.multiplier

    # Set by `DartsSearchModel.activation_checkpointing_enable()`: keep only the cell's inputs in the forward pass and
    # recompute the rest in the backward pass (the mixed operations' outputs are most of a search's memory).
    gradient_checkpointing = False

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None = None,
        skip_weight: float | None = None,
        selected: list[int] | None = None,
        recomputing: bool = False,
    ) -> torch.Tensor:
        # weights: [num_edges, num_primitives]; edge_weights: [num_edges] (edge normalisation) or None;
        # skip_weight: the weight of DARTS-'s auxiliary skip connections, or None; selected: GDAS's sampled column
        # per edge, or None
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled() and not recomputing:
            return self._gradient_checkpointing_func(
                self._checkpointed_forward(), s0, s1, weights, edge_weights, skip_weight, selected
            )
        return self.nodes_output(s0, s1, weights, edge_weights, skip_weight, selected)

    def nodes_output(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None,
        skip_weight: float | None = None,
        selected: list[int] | None = None,
    ) -> torch.Tensor:
        """The cell's computation: every node sums the mixed operations of all the states before it; the output
        concatenates the last `multiplier` nodes."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for _ in range(self.num_nodes):
            node = 0
            for h in states:  # node i reads every state before it
                edge_weight = None if edge_weights is None else edge_weights[edge]
                column = None if selected is None else selected[edge]
                node = node + self.edges[edge](h, weights[edge], edge_weight, skip_weight, column)
                edge += 1
            states.append(node)
        return torch.cat(states[-self.multiplier :], dim=1)

    def _checkpointed_forward(self):
        """The cell as a function of its inputs, with the tensors it holds now: the architect substitutes weights
        (`functional_call`) and the recomputation in the backward pass comes after that call returned, so they are
        captured here. The recomputation normalises with the batch's statistics as the first pass did, but on copies
        of the BatchNorm buffers, so that the running statistics move once per pass, not twice."""
        parameters, buffers, passes = dict(self.named_parameters()), dict(self.named_buffers()), []

        def cell(*inputs):
            state = buffers if not passes else {name: buffer.clone() for name, buffer in buffers.items()}
            passes.append(True)
            return functional_call(self, {**parameters, **state}, inputs, {"recomputing": True})

        return cell


class DartsSearchModel(PreTrainedModel):
    """The supernet: the derived network's backbone (CIFAR stem, `stack_cells`) with search cells, global pooling, a
    classifier, and the architecture weights."""

    config: DartsSearchConfig
    config_class = DartsSearchConfig
    base_model_prefix = "darts_search"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True

    def __init__(self, config: DartsSearchConfig):
        super().__init__(config)
        stem_channels = config.stem_multiplier * config.init_channels
        self.stem = cifar_stem(config.num_channels, stem_channels)
        self.cells = stack_cells(
            config.init_channels,
            config.reduction_cells,
            config.num_cells,
            stem_channels,
            reduced_stem=False,
            make_cell=lambda *sizes: SearchCell(config, *sizes),
        )
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.cells[-1].out_channels, config.num_labels)
        shape = (config.num_edges, len(config.candidates["normal"][0]))
        self.alphas = nn.ParameterDict({"normal": torch.empty(shape), "reduce": torch.empty(shape)})
        self.betas = (
            nn.ParameterDict({"normal": torch.empty(config.num_edges), "reduce": torch.empty(config.num_edges)})
            if config.edge_normalization
            else None
        )
        # Under DistributedDataParallel the architecture weights are left to the architect, which averages their
        # gradients itself (they get none in the weight step); every process starts them from the same seed.
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self, [name for name, _ in self.named_parameters() if name.startswith(("alphas.", "betas."))]
        )
        # The weight of the auxiliary skip connections (with `auxiliary_skip`): set per epoch by the search.
        self.auxiliary_skip_weight = 1.0 if config.auxiliary_skip else None
        # GDAS's Gumbel temperature (with relaxation "gumbel"): annealed per epoch by the search.
        self.temperature = 1.0
        self.post_init()

    @property
    def alphas_normal(self) -> nn.Parameter:
        """Architecture weights of the normal cells, `[num_edges, num_primitives]`."""
        return self.alphas["normal"]

    @property
    def alphas_reduce(self) -> nn.Parameter:
        """Architecture weights of the reduction cells, `[num_edges, num_primitives]`."""
        return self.alphas["reduce"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """PyTorch's default initialisation for the layers (as the original), 1e-3 * N(0, 1) for the alphas (and
        the betas, as PC-DARTS)."""
        if module is self.alphas or (self.betas is not None and module is self.betas):
            for alpha in module.values():
                init.normal_(alpha, std=self.config.alpha_init_std)
        else:
            init_pytorch_default(module)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights alpha (normal, reduce) and, with edge normalisation, beta (normal, reduce),
        trained by the architect."""
        return [self.alphas_normal, self.alphas_reduce, *(self.betas.values() if self.betas is not None else ())]

    def edge_weights(self, cell: str) -> torch.Tensor | None:
        """With edge normalisation, the weights of the edges of the `cell` ("normal" or "reduce") cells, normalised
        per node; None otherwise."""
        return None if self.betas is None else node_softmax(self.betas[cell], self.config.num_nodes)

    def weight_parameters(self) -> list[nn.Parameter]:
        """The operation weights w, trained by the weight optimizer."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def mixing_weights(self) -> dict[str, torch.Tensor]:
        """Each cell kind's operation weights, `[num_edges, num_primitives]` (`relax`)."""
        return {
            cell: relax(self.alphas[cell], self.config.relaxation, self.training, self.temperature)
            for cell in ("normal", "reduce")
        }

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        mixing_weights: dict[str, torch.Tensor] | None = None,
        **kwargs,
    ):
        """`mixing_weights`: operation weights to mix with instead of `self.mixing_weights()` (SDARTS's perturbed
        ones in the weight step)."""
        weights = self.mixing_weights() if mixing_weights is None else mixing_weights
        edge_weights = {cell: self.edge_weights(cell) for cell in ("normal", "reduce")}
        # GDAS runs only the sampled operation of each edge: the column of its one-hot weights.
        sampled = self.config.relaxation == "gumbel" and self.training
        selected = {cell: w.argmax(-1).tolist() if sampled else None for cell, w in weights.items()}
        s0 = s1 = self.stem(pixel_values)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], edge_weights[kind], self.auxiliary_skip_weight, selected[kind])
        logits = self.classifier(self.pooler(s1).flatten(1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)

    def genotype(self) -> Genotype:
        """The discrete cells the current alphas encode (the paper's top-2 rule, 'none' excluded; with edge
        normalisation, the edges ranked by their operation's weight times the edge's; with the sigmoid relaxation,
        FairDARTS's threshold on top, which raises `EmptyCellError` while no operation reaches it)."""
        fair = self.config.relaxation == "sigmoid"
        return derive_genotype(
            self.alphas_normal,
            self.alphas_reduce,
            num_nodes=self.config.num_nodes,
            multiplier=self.config.multiplier,
            candidates=self.config.candidates,
            edge_weights_normal=self.edge_weights("normal"),
            edge_weights_reduce=self.edge_weights("reduce"),
            activation="sigmoid" if fair else "softmax",
            threshold=self.config.operation_threshold if fair else None,
        )


__all__ = [
    "RELAXATIONS",
    "DartsSearchConfig",
    "DartsSearchModel",
    "MixedOp",
    "SearchCell",
    "channel_shuffle",
    "hard_gumbel_sample",
    "node_softmax",
    "relax",
]
