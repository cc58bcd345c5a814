"""The search supernet of NAS-Bench-201's cell space (Dong & Yang 2020, arXiv:2001.00326, Sec. 2.1 and 5): the
benchmark's network with every edge of its cell a mixed operation over the five candidates, 'none' included, as the
DARTS family searches that space.

One set of alphas (one row per edge, 6; one column per candidate, 5) is shared by every cell of the three stages; the
residual blocks between the stages are not searched. The edges are DARTS's mixed operations (`MixedOp`), affine-free
and with bare pooling, as the benchmark's search code builds them. By default their BatchNorms normalise with the
batch's own statistics in evaluation too (`track_running_stats=False`, as the benchmark's published searches ran):
running statistics gathered under one mixture of operations would mislead under the next. The found cell keeps the
strongest operation of every edge, 'none' included (`derive_nas_bench_201_genotype`), and is a `NasBench201Config`.

`relaxation` "softmax" (DARTS), "gumbel" (GDAS) or "dirichlet" (DrNAS) weighs the candidates as in the DARTS supernet
(`relax`); `auxiliary_skip` adds DARTS-'s skip connection to every edge.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from .configuration_nas_bench_201 import check_network_settings
from .genotypes import NAS_BENCH_201_OPERATIONS, NasBench201Genotype, derive_nas_bench_201_genotype
from .modeling_darts import init_pytorch_default
from .modeling_darts_search import MixedOp, relax
from .modeling_nas_bench_201 import stack_stages


NAS_BENCH_201_RELAXATIONS = ("softmax", "gumbel", "dirichlet")


class NasBench201SearchConfig(PreTrainedConfig):
    r"""
    Configuration of the NAS-Bench-201 search supernet. The defaults are the benchmark's searches on CIFAR-10 (16
    channels, 5 cells per stage).

    Args:
        init_channels (`int`, *optional*, defaults to 16): channels of the first stage.
        cells_per_stage (`int`, *optional*, defaults to 5): the benchmark's N.
        num_channels (`int`, *optional*, defaults to 3): channels of the input images.
        image_size (`int`, *optional*, defaults to 32): side of the input images.
        image_mean (`list[float]`, *optional*), image_std (`list[float]`, *optional*): normalisation of the data.
        alpha_init_std (`float`, *optional*, defaults to 1e-3): alphas start as `alpha_init_std * N(0, 1)`.
        relaxation (`str`, *optional*, defaults to `"softmax"`): `"softmax"`, `"gumbel"` or `"dirichlet"`
            (`modeling_darts_search.relax`).
        auxiliary_skip (`bool`, *optional*, defaults to `False`): DARTS-'s auxiliary skip connection on every edge.
        track_running_stats (`bool`, *optional*, defaults to `False`): whether the cells' BatchNorms keep running
            statistics (for evaluation) or always normalise with the batch's.
    """

    model_type = "nas_bench_201_search"
    # Node i (from 1) of the cell reads the cell's input and every node before it: 1 + 2 + 3 = 6 edges.
    num_nodes = 3
    num_edges = 6

    init_channels: int = 16
    cells_per_stage: int = 5
    num_channels: int = 3
    image_size: int = 32
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    alpha_init_std: float = 1e-3
    relaxation: str = "softmax"
    auxiliary_skip: bool = False
    track_running_stats: bool = False

    def __post_init__(self, **kwargs):
        if self.relaxation not in NAS_BENCH_201_RELAXATIONS:
            raise ValueError(
                f"relaxation must be one of {list(NAS_BENCH_201_RELAXATIONS)} in NAS-Bench-201's space, got "
                f"{self.relaxation!r} (FairDARTS's sigmoid parses DARTS's top-2 edges per node; this space keeps "
                "every edge)."
            )
        check_network_settings(self, kwargs, fewest_cells=1)  # a supernet without cells would search nothing
        super().__post_init__(**kwargs)

    def column_names(self, cell: str = "cell") -> list[str]:
        """The candidates naming the columns of the alphas (the DARTS supernet's config answers per cell)."""
        return list(NAS_BENCH_201_OPERATIONS)


def batch_statistics_only(batch_norm: nn.BatchNorm2d) -> None:
    """Make `batch_norm` normalise with the batch's statistics in evaluation too, and keep no running ones."""
    batch_norm.track_running_stats = False
    batch_norm.running_mean = batch_norm.running_var = batch_norm.num_batches_tracked = None


class NasBench201SearchCell(nn.Module):
    """The cell with every edge a mixed operation: node i sums the mixed operations of the states before it; the
    output is the last node."""

    def __init__(self, config: NasBench201SearchConfig, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(
            MixedOp(NAS_BENCH_201_OPERATIONS, channels, 1, auxiliary_skip=config.auxiliary_skip, pool_batch_norm=False)
            for _ in range(config.num_edges)
        )
        if not config.track_running_stats:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    batch_statistics_only(module)
        self.num_nodes = config.num_nodes

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor,
        skip_weight: float | None = None,
        selected: list[int] | None = None,
    ) -> torch.Tensor:
        """weights: [6, 5], the edges' operation weights; skip_weight: DARTS-'s auxiliary skip weight, or None;
        selected: GDAS's sampled column per edge, or None."""
        states, edge = [x], 0
        for _ in range(self.num_nodes):
            node = 0
            for h in states:
                column = None if selected is None else selected[edge]
                node = node + self.edges[edge](h, weights[edge], None, skip_weight, column)
                edge += 1
            states.append(node)
        return states[-1]


class NasBench201SearchModel(PreTrainedModel):
    """The supernet: the benchmark's stem, stages and classifier with search cells, and the architecture weights."""

    config: NasBench201SearchConfig
    config_class = NasBench201SearchConfig
    base_model_prefix = "nas_bench_201_search"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: NasBench201SearchConfig):
        super().__init__(config)
        self.stem, self.layers, self.last_activation = stack_stages(
            config, lambda channels: NasBench201SearchCell(config, channels)
        )
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(config.init_channels * 4, config.num_labels)
        self.alphas = nn.ParameterDict({"cell": torch.empty(config.num_edges, len(NAS_BENCH_201_OPERATIONS))})
        # The architect averages the alphas' gradients itself (as in the DARTS supernet).
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, ["alphas.cell"])
        # Set per epoch by the search: the weight of the auxiliary skip connections, GDAS's temperature.
        self.auxiliary_skip_weight = 1.0 if config.auxiliary_skip else None
        self.temperature = 1.0
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """PyTorch's default initialisation for the layers, `alpha_init_std * N(0, 1)` for the alphas (as the
        benchmark's code: 1e-3)."""
        if module is self.alphas:
            init.normal_(module["cell"], std=self.config.alpha_init_std)
        else:
            init_pytorch_default(module)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights, trained by the architect: the cell's alphas."""
        return [self.alphas["cell"]]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The operation weights w, trained by the weight optimizer."""
        return [p for name, p in self.named_parameters() if name != "alphas.cell"]

    def mixing_weights(self) -> dict[str, torch.Tensor]:
        """The cell's operation weights, `[6, 5]` (`relax`)."""
        return {"cell": relax(self.alphas["cell"], self.config.relaxation, self.training, self.temperature)}

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        mixing_weights: dict[str, torch.Tensor] | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention:
        """`mixing_weights`: operation weights to mix with instead of `self.mixing_weights()` (SDARTS's perturbed
        ones in the weight step)."""
        weights = (self.mixing_weights() if mixing_weights is None else mixing_weights)["cell"]
        # GDAS runs only the sampled operation of each edge: the column of its one-hot weights.
        selected = weights.argmax(-1).tolist() if self.config.relaxation == "gumbel" and self.training else None
        hidden = self.stem(pixel_values)
        for layer in self.layers:
            if isinstance(layer, NasBench201SearchCell):
                hidden = layer(hidden, weights, self.auxiliary_skip_weight, selected)
            else:
                hidden = layer(hidden)
        logits = self.classifier(self.pooler(self.last_activation(hidden)).flatten(1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)

    def genotype(self) -> NasBench201Genotype:
        """The cell the current alphas encode: the strongest operation of every edge, 'none' included."""
        return derive_nas_bench_201_genotype(self.alphas["cell"])


__all__ = [
    "NAS_BENCH_201_RELAXATIONS",
    "NasBench201SearchCell",
    "NasBench201SearchConfig",
    "NasBench201SearchModel",
    "batch_statistics_only",
]
