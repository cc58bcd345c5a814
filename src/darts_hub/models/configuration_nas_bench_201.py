"""Configuration of the NAS-Bench-201 networks (Dong & Yang 2020, arXiv:2001.00326, Sec. 2.1)."""

from __future__ import annotations

from transformers import PreTrainedConfig

from .configuration_darts import CIFAR10_MEAN, CIFAR10_STD
from .genotypes import NAS_BENCH_201_RESNET, NasBench201Genotype


def check_network_settings(config, kwargs: dict, fewest_cells: int) -> None:
    """The checks and defaults of the benchmark's network, shared with the search supernet's config: positive
    sizes (at least `fewest_cells` cells per stage), images the two stride-2 blocks can halve, CIFAR-10's
    statistics for colour images (0.5 otherwise), 10 labels unless `kwargs` (the config's) give others."""
    if config.init_channels < 1 or config.cells_per_stage < fewest_cells or config.num_channels < 1:
        raise ValueError(
            f"init_channels and num_channels must be positive and cells_per_stage >= {fewest_cells}, got "
            f"{config.init_channels}, {config.cells_per_stage} and {config.num_channels}."
        )
    if config.image_size < 4:
        raise ValueError(f"The two stride-2 blocks need images of at least 4x4, got {config.image_size}.")
    default = [0.5] * config.num_channels
    config.image_mean = list(config.image_mean or (CIFAR10_MEAN if config.num_channels == 3 else default))
    config.image_std = list(config.image_std or (CIFAR10_STD if config.num_channels == 3 else default))
    if config.id2label is None and kwargs.get("num_labels") is None:
        kwargs["num_labels"] = 10


class NasBench201Config(PreTrainedConfig):
    r"""
    Configuration of a NAS-Bench-201 network: a 3x3 convolution stem, three stages of `cells_per_stage` copies of the
    cell at `init_channels`, twice and four times as many channels, joined by stride-2 ResNet basic blocks, then
    BatchNorm, ReLU, global pooling and a linear classifier. The defaults are the benchmark's CIFAR network (16
    channels, 5 cells per stage) with the ResNet cell.

    Args:
        genotype (`str` or `NasBench201Genotype`, *optional*): the cell, as the benchmark writes it
            (`|nor_conv_3x3~0|+|...|`); defaults to the ResNet cell. Stored as that string.
        init_channels (`int`, *optional*, defaults to 16): channels of the first stage.
        cells_per_stage (`int`, *optional*, defaults to 5): the benchmark's N.
        num_channels (`int`, *optional*, defaults to 3): channels of the input images.
        image_size (`int`, *optional*, defaults to 32): side of the input images.
        image_mean (`list[float]`, *optional*), image_std (`list[float]`, *optional*): normalisation of the saved
            image processor; default to CIFAR-10's.
    """

    model_type = "nas_bench_201"
    # The preprocessing of `modeling_darts.image_processor_for`: a plain resize, as for the DARTS CIFAR stem.
    stem = "cifar"

    genotype: str | NasBench201Genotype | None = None
    init_channels: int = 16
    cells_per_stage: int = 5
    num_channels: int = 3
    image_size: int = 32
    image_mean: list[float] | None = None
    image_std: list[float] | None = None

    def __post_init__(self, **kwargs):
        genotype = NAS_BENCH_201_RESNET if self.genotype is None else self.genotype
        if isinstance(genotype, str):
            genotype = NasBench201Genotype.from_string(genotype)
        if not isinstance(genotype, NasBench201Genotype):
            raise TypeError(f"genotype must be a NAS-Bench-201 string or NasBench201Genotype, got {genotype!r}.")
        self.genotype = str(genotype)
        check_network_settings(self, kwargs, fewest_cells=0)
        super().__post_init__(**kwargs)

    def get_genotype(self) -> NasBench201Genotype:
        """The cell as a `NasBench201Genotype` (the config stores the benchmark's string)."""
        return NasBench201Genotype.from_string(self.genotype)


__all__ = ["NasBench201Config", "check_network_settings"]
