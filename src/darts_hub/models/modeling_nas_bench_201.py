"""The networks of NAS-Bench-201 (Dong & Yang 2020, arXiv:2001.00326, Sec. 2.1 and Fig. 1), the benchmark on which
the DARTS family is compared: every one of its 15,625 cells, stacked as the benchmark trains them.

A cell is a complete DAG on its input and three nodes; each node sums one operation of every earlier state, and the
cell's output is the last node. Cells keep their input's channels and resolution: the network reduces between its
three stages with ResNet basic blocks instead of reduction cells.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_nas_bench_201 import NasBench201Config
from .genotypes import NasBench201Genotype
from .modeling_darts import DartsPreTrainedModel
from .ops import ReLUConvBN, build_operation


class NasBench201Cell(nn.Module):
    """One cell: node i is the sum of its edges' operations on states 0 .. i - 1; 'none' edges contribute nothing
    (a node of only 'none' edges is zero), and the output is the last node."""

    def __init__(self, genotype: NasBench201Genotype, channels: int):
        super().__init__()
        edges = [(op, index) for node in genotype.nodes for op, index in node if op != "none"]
        self.ops = nn.ModuleList(build_operation(op, channels, stride=1) for op, _ in edges)
        self.inputs = tuple(index for _, index in edges)
        # The positions in `ops` of each node's edges.
        self.nodes, position = [], 0
        for node in genotype.nodes:
            count = sum(op != "none" for op, _ in node)
            self.nodes.append(range(position, position + count))
            position += count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for edges in self.nodes:
            node = None
            for edge in edges:
                h = self.ops[edge](states[self.inputs[edge]])
                node = h if node is None else node + h
            states.append(torch.zeros_like(x) if node is None else node)
        return states[-1]


class NasBench201ResidualBlock(nn.Module):
    """The reduction between stages: a ResNet basic block of stride 2 (two ReLU-convolution-BatchNorm 3x3 layers),
    its shortcut a 2x2 average pooling and a 1x1 convolution to the new channels."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, 2, 1)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(in_channels, out_channels, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def stack_stages(config, make_cell) -> tuple[nn.Sequential, nn.ModuleList, nn.Sequential]:
    """The benchmark's network around its cells (shared by the networks and the search supernet): the stem (a 3x3
    convolution to `init_channels` and BatchNorm), three stages of `cells_per_stage` cells `make_cell(channels)`
    joined by the residual blocks that double the channels, and the final BatchNorm and ReLU."""
    channels = config.init_channels
    stem = nn.Sequential(nn.Conv2d(config.num_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
    layers = []
    for stage in range(3):
        if stage:
            layers.append(NasBench201ResidualBlock(channels, 2 * channels))
            channels *= 2
        layers += [make_cell(channels) for _ in range(config.cells_per_stage)]
    return stem, nn.ModuleList(layers), nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class NasBench201PreTrainedModel(DartsPreTrainedModel):
    """PyTorch's default initialisation and the saved image processor, as the DARTS networks."""

    config: NasBench201Config
    config_class = NasBench201Config
    base_model_prefix = "nas_bench_201"
    _no_split_modules = ["NasBench201Cell"]


class NasBench201Model(NasBench201PreTrainedModel):
    """The stem, the three stages and the final BatchNorm and ReLU, without the classifier."""

    def __init__(self, config: NasBench201Config):
        super().__init__(config)
        genotype = config.get_genotype()
        self.stem, self.layers, self.last_activation = stack_stages(
            config, lambda channels: NasBench201Cell(genotype, channels)
        )
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.num_features = config.init_channels * 4
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        hidden = self.stem(pixel_values)
        hidden_states = (hidden,) if output_hidden_states else None
        for layer in self.layers:
            hidden = layer(hidden)
            if output_hidden_states:
                hidden_states += (hidden,)
        hidden = self.last_activation(hidden)
        pooled = self.pooler(hidden).flatten(1)
        if not return_dict:
            return tuple(v for v in (hidden, pooled, hidden_states) if v is not None)
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=hidden_states
        )


class NasBench201ForImageClassification(NasBench201PreTrainedModel):
    """A NAS-Bench-201 network with its linear classifier."""

    def __init__(self, config: NasBench201Config):
        super().__init__(config)
        self.nas_bench_201 = NasBench201Model(config)
        self.classifier = nn.Linear(self.nas_bench_201.num_features, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.nas_bench_201(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        if not return_dict:
            output = tuple(v for v in (logits, outputs.hidden_states) if v is not None)
            return (loss,) + output if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = [
    "NasBench201Cell",
    "NasBench201ForImageClassification",
    "NasBench201Model",
    "NasBench201PreTrainedModel",
    "NasBench201ResidualBlock",
    "stack_stages",
]
