"""DARTS convolutional networks as transformers models.

The network of Sec. 3.2 of the paper: a stem, a stack of cells built from a genotype (reduction cells at 1/3 and 2/3
of the depth), global average pooling and a linear classifier, plus the auxiliary classifier used in training. The
module layout follows the original implementation (`cells.N.preprocess0`, `cells.N.ops.M.op.K`, `auxiliary_head`,
`classifier`) so that the released checkpoints map onto it key by key.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import BitImageProcessor, PreTrainedModel, ViTImageProcessor
from transformers import initialization as init
from transformers.image_utils import PILImageResampling
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention
from transformers.utils import ModelOutput

from .configuration_darts import DartsConfig
from .genotypes import Genotype
from .ops import DropPath, FactorizedReduce, ReLUConvBN, build_operation


def cell_input_layers(
    prev_prev_channels: int, prev_channels: int, channels: int, reduction_prev: bool, affine: bool = True
) -> tuple[nn.Module, nn.Module]:
    """The layers that bring a cell's two inputs to `channels` (a derived cell's and a search cell's alike): a 1x1
    ReLU-conv-BN each, or, when the previous cell was a reduction, a `FactorizedReduce` for the older input c_{k-2},
    which is still at twice the resolution."""
    if reduction_prev:
        preprocess0 = FactorizedReduce(prev_prev_channels, channels, affine=affine)
    else:
        preprocess0 = ReLUConvBN(prev_prev_channels, channels, 1, 1, 0, affine=affine)
    return preprocess0, ReLUConvBN(prev_channels, channels, 1, 1, 0, affine=affine)


def cifar_stem(num_channels: int, out_channels: int) -> nn.Sequential:
    """The CIFAR stem of the derived network and of the search supernet: one 3x3 convolution keeping the
    resolution, then BatchNorm."""
    return nn.Sequential(nn.Conv2d(num_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels))


def stack_cells(
    init_channels: int,
    reduction_cells: tuple[int, ...],
    num_cells: int,
    stem_channels: int,
    reduced_stem: bool,
    make_cell,
) -> nn.ModuleList:
    """The stack of cells, the one backbone of the derived network and of the search supernet: every cell takes the
    outputs of the two before it (the stem's output twice for the first), and a reduction cell doubles the
    channels. `make_cell(prev_prev_channels, prev_channels, channels, reduction, reduction_prev)` builds one cell
    (a module with `out_channels`); `reduced_stem`: the stem's last layer halved the resolution (the ImageNet stem),
    so the first cell reduces its older input."""
    channels, prev_prev_channels, prev_channels, reduction_prev = (
        init_channels,
        stem_channels,
        stem_channels,
        reduced_stem,
    )
    cells = nn.ModuleList()
    for index in range(num_cells):
        reduction = index in reduction_cells
        if reduction:
            channels *= 2
        cells.append(make_cell(prev_prev_channels, prev_channels, channels, reduction, reduction_prev))
        reduction_prev = reduction
        prev_prev_channels, prev_channels = prev_channels, cells[-1].out_channels
    return cells


class DartsCell(nn.Module):
    """One cell: preprocess both inputs to `channels`, compute every node as the sum of its two edges, concatenate.

    In a reduction cell, the edges leaving the two cell inputs have stride 2. When the previous cell was a reduction,
    the older input c_{k-2} is still at twice the resolution and is reduced by a `FactorizedReduce`.
    """

    def __init__(
        self,
        genotype: Genotype,
        prev_prev_channels: int,
        prev_channels: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        drop_path_prob: float = 0.0,
    ):
        super().__init__()
        self.preprocess0, self.preprocess1 = cell_input_layers(
            prev_prev_channels, prev_channels, channels, reduction_prev
        )
        cell = "reduce" if reduction else "normal"
        edges = getattr(genotype, cell)
        self.concat = getattr(genotype, f"{cell}_concat")
        self.inputs = tuple(index for _, index in edges)
        # The edges of each node, as positions in `ops` (two per node, except in FairDARTS's cells).
        node_edges = genotype.node_edges(cell)
        starts = itertools.accumulate((len(node) for node in node_edges), initial=0)
        self.nodes = tuple(range(start, start + len(node)) for start, node in zip(starts, node_edges))
        self.ops = nn.ModuleList(
            build_operation(op, channels, stride=2 if reduction and index < 2 else 1) for op, index in edges
        )
        # Drop-path applies to every edge except plain identities (the original's rule).
        self.droppable = tuple(not isinstance(op, nn.Identity) for op in self.ops)
        self.drop_path = DropPath(drop_path_prob)
        self.reduction = reduction
        self.out_channels = channels * len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """`s0`, `s1`: the outputs of the two cells before. Every node sums its edges, each an operation applied to an
        earlier state (drop-path on all but identities); the output concatenates the `concat` states. A node without
        edges is no state (None)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for edges in self.nodes:
            node = None
            for edge in edges:
                h = self.ops[edge](states[self.inputs[edge]])
                h = self.drop_path(h) if self.droppable[edge] else h
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsAuxiliaryHead(nn.Module):
    """The auxiliary classifier of the second reduction cell (Inception's auxiliary towers, as in NASNet).

    It expects 8x8 features from the CIFAR stem (32x32 images) and 7x7 from the ImageNet stem (224x224 images). The
    ImageNet head has no BatchNorm after its second convolution: a typo in the original implementation that the
    paper's ImageNet results were obtained with, kept for fidelity.
    """

    def __init__(self, in_channels: int, num_labels: int, stem: str):
        super().__init__()
        layers = [
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3 if stem == "cifar" else 2, padding=0, count_include_pad=False),
            nn.Conv2d(in_channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if stem == "cifar":
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_labels)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        # The 5x5 pooling must leave 2x2 so that the 2x2 convolution ends at 1x1.
        stride = self.features[1].stride
        if any(size < 5 or (size - 5) // stride != 1 for size in hidden_state.shape[-2:]):
            raise ValueError(
                f"The auxiliary head got {tuple(hidden_state.shape[-2:])} features and needs 8x8 (CIFAR stem, 32x32 "
                "images) or 7x7 (ImageNet stem, 224x224 images); set use_auxiliary_head=False for other sizes."
            )
        return self.classifier(self.features(hidden_state).flatten(1))


@dataclass
class DartsModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            Output of the last cell.
        pooler_output (`torch.Tensor` of shape `(batch_size, num_channels)`):
            The last cell's output averaged over space.
        auxiliary_hidden_state (`torch.Tensor`):
            Output of the second reduction cell, the input of the auxiliary head.
        hidden_states (`tuple(torch.Tensor)`, *optional*, returned when `output_hidden_states=True`):
            Output of the stem and of every cell.
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    auxiliary_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class DartsImageClassifierOutput(ImageClassifierOutputWithNoAttention):
    """
    Args:
        loss (`torch.Tensor`, *optional*, returned when `labels` are given):
            Cross-entropy (with label smoothing if configured); in training plus `auxiliary_weight` times the
            auxiliary head's cross-entropy.
        logits (`torch.Tensor` of shape `(batch_size, num_labels)`):
            Classification scores (before softmax).
        hidden_states (`tuple(torch.Tensor)`, *optional*, returned when `output_hidden_states=True`):
            Output of the stem and of every cell.
        aux_logits (`torch.Tensor` of shape `(batch_size, num_labels)`, *optional*):
            Scores of the auxiliary head; only computed in training mode.
    """

    aux_logits: torch.Tensor | None = None


def init_pytorch_default(module: nn.Module) -> None:
    """PyTorch's default initialisation, as the original code (and the paper's results) relied on.

    transformers' generic default would draw convolutions from N(0, 0.02), far below PyTorch's kaiming-uniform
    (a=sqrt(5)) scale that these networks were tuned with. The `transformers.initialization` functions skip tensors
    already loaded from a checkpoint.
    """
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        if module.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(module.bias, -bound, bound)
    elif isinstance(module, nn.BatchNorm2d):
        if module.affine:
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if module.track_running_stats:
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)


class DartsPreTrainedModel(PreTrainedModel):
    config: DartsConfig
    config_class = DartsConfig
    base_model_prefix = "darts"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["DartsCell"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        init_pytorch_default(module)

    def set_drop_path_prob(self, drop_prob: float) -> None:
        """Set the drop-path probability of every cell (training loops schedule it per epoch)."""
        for module in self.modules():
            if isinstance(module, DropPath):
                module.drop_prob = drop_prob

    def save_pretrained(self, save_directory: str | Path, *args, **kwargs):
        """Save the model and, beside it, the image processor that `pipeline("image-classification")` needs."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            image_processor_for(self.config).save_pretrained(save_directory)


class DartsModel(DartsPreTrainedModel):
    """The stem and the cells, without the classifier."""

    def __init__(self, config: DartsConfig):
        super().__init__(config)
        channels = config.init_channels
        if config.stem == "cifar":
            stem_channels = config.stem_multiplier * channels
            self.stem = cifar_stem(config.num_channels, stem_channels)
        else:
            self.stem0 = nn.Sequential(
                nn.Conv2d(config.num_channels, channels // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
            )
            stem_channels = channels
        genotype = config.get_genotype()
        self.cells = stack_cells(
            config.init_channels,
            config.reduction_cells,
            config.num_cells,
            stem_channels,
            reduced_stem=config.stem == "imagenet",
            make_cell=lambda *sizes: DartsCell(genotype, *sizes, drop_path_prob=config.drop_path_prob),
        )
        self.num_features = self.cells[-1].out_channels
        self.auxiliary_channels = self.cells[config.auxiliary_cell].out_channels
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DartsModelOutput | tuple:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        s0, s1 = self.stem_states(pixel_values)
        hidden_states = (s1,) if output_hidden_states else None
        auxiliary_hidden_state = None
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if index == self.config.auxiliary_cell:
                auxiliary_hidden_state = s1
            if output_hidden_states:
                hidden_states += (s1,)
        return darts_model_output(self, s1, auxiliary_hidden_state, hidden_states, return_dict)

    def stem_states(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two inputs of the first cell: the CIFAR stem's output twice, or the outputs of the ImageNet stem's two
        parts."""
        if self.config.stem == "cifar":
            s0 = s1 = self.stem(pixel_values)
            return s0, s1
        s0 = self.stem0(pixel_values)
        return s0, self.stem1(s0)


def darts_model_output(
    model: DartsModel,
    last_hidden_state: torch.Tensor,
    auxiliary_hidden_state: torch.Tensor | None,
    hidden_states: tuple[torch.Tensor, ...] | None,
    return_dict: bool,
) -> DartsModelOutput | tuple:
    """`DartsModel`'s output from the last cell's output (pooled by `model.pooler`), the auxiliary head's input and
    the hidden states, as a `DartsModelOutput` or (without `return_dict`) a tuple of what is not None."""
    pooled = model.pooler(last_hidden_state).flatten(1)
    if not return_dict:
        return tuple(v for v in (last_hidden_state, pooled, auxiliary_hidden_state, hidden_states) if v is not None)
    return DartsModelOutput(
        last_hidden_state=last_hidden_state,
        pooler_output=pooled,
        auxiliary_hidden_state=auxiliary_hidden_state,
        hidden_states=hidden_states,
    )


class DartsForImageClassification(DartsPreTrainedModel):
    """A DARTS network with its classifier and, when configured, the auxiliary head used in training."""

    def __init__(self, config: DartsConfig):
        super().__init__(config)
        self.darts = DartsModel(config)
        if config.use_auxiliary_head:
            self.auxiliary_head = DartsAuxiliaryHead(self.darts.auxiliary_channels, config.num_labels, config.stem)
        self.classifier = nn.Linear(self.darts.num_features, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DartsImageClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.darts(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        aux_logits = None
        if self.training and self.config.use_auxiliary_head:
            aux_logits = self.auxiliary_head(outputs.auxiliary_hidden_state)

        loss = None
        if labels is not None:
            loss_fn = nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)
            loss = loss_fn(logits, labels)
            if aux_logits is not None:
                loss = loss + self.config.auxiliary_weight * loss_fn(aux_logits, labels)

        if not return_dict:
            output = tuple(v for v in (logits, outputs.hidden_states, aux_logits) if v is not None)
            return (loss,) + output if loss is not None else output
        return DartsImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, aux_logits=aux_logits
        )


def evaluation_resize(config: DartsConfig) -> int | None:
    """The shorter side images are resized to before the centre crop of `image_size` in evaluation: 8/7 of it for
    the ImageNet stem (256 -> 224, the original), none for the CIFAR stem (a plain resize)."""
    return config.image_size * 8 // 7 if config.stem == "imagenet" else None


def image_processor_for(config: DartsConfig) -> ViTImageProcessor | BitImageProcessor:
    """The preprocessing the network expects, as a transformers image processor.

    CIFAR stem: resize to `image_size` and normalise. ImageNet stem: resize the shorter side to 8/7 of `image_size`
    and centre-crop (256 -> 224, the original evaluation transform), then normalise.
    """
    common = dict(
        image_mean=config.image_mean,
        image_std=config.image_std,
        resample=PILImageResampling.BILINEAR,
        do_convert_rgb=config.num_channels == 3,
    )
    if config.stem == "cifar":
        return ViTImageProcessor(size={"height": config.image_size, "width": config.image_size}, **common)
    return BitImageProcessor(
        size={"shortest_edge": evaluation_resize(config)},
        crop_size={"height": config.image_size, "width": config.image_size},
        **common,
    )


__all__ = [
    "cell_input_layers",
    "cifar_stem",
    "darts_model_output",
    "evaluation_resize",
    "stack_cells",
    "init_pytorch_default",
    "DartsForImageClassification",
    "DartsImageClassifierOutput",
    "DartsModel",
    "DartsModelOutput",
    "DartsPreTrainedModel",
    "image_processor_for",
]
