"""Configuration of the DARTS convolutional networks (CIFAR and ImageNet variants)."""

from __future__ import annotations

import math

from transformers import PreTrainedConfig

from .genotypes import Genotype, as_genotype


CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STEMS = {
    # stem name: (default image size, mean, std)
    "cifar": (32, CIFAR10_MEAN, CIFAR10_STD),
    "imagenet": (224, IMAGENET_MEAN, IMAGENET_STD),
}


def reduction_positions(num_cells: int) -> tuple[int, ...]:
    """Indices of the reduction cells of a stack of `num_cells`: at 1/3 and 2/3 of the depth (one index when they
    coincide), for the derived network and the search supernet alike."""
    return tuple(sorted({num_cells // 3, 2 * num_cells // 3}))


class DartsConfig(PreTrainedConfig):
    r"""
    Configuration of a network built by stacking DARTS cells (Sec. 3.2 of the paper): a stem, `num_cells` cells of
    which those at 1/3 and 2/3 of the depth are reduction cells (stride 2, twice the channels), global pooling and a
    linear classifier, optionally an auxiliary classifier after the second reduction cell.

    The defaults are the paper's CIFAR-10 network (DARTS_V2, 36 channels, 20 cells, auxiliary head).

    Args:
        genotype (`dict`, `str` or `Genotype`, *optional*, defaults to `"DARTS_V2"`):
            The cells: a zoo name (`"DARTS_V2"`, `"NASNet"`, ...), a `Genotype`, or its JSON form. Stored as JSON.
        init_channels (`int`, *optional*, defaults to 36):
            Channels of each operation in the first cells; doubled at every reduction cell.
        num_cells (`int`, *optional*, defaults to 20):
            Number of cells (the paper's "layers").
        num_channels (`int`, *optional*, defaults to 3):
            Channels of the input images.
        stem (`str`, *optional*, defaults to `"cifar"`):
            `"cifar"`: one 3x3 convolution keeping the resolution. `"imagenet"`: three stride-2 3x3 convolutions
            (1/8 of the resolution), the first cell taking a reduced input.
        stem_multiplier (`int`, *optional*, defaults to 3):
            The CIFAR stem outputs `stem_multiplier * init_channels` channels.
        use_auxiliary_head (`bool`, *optional*, defaults to `True`):
            Add the auxiliary classifier (used only in training) after the second reduction cell.
        auxiliary_weight (`float`, *optional*, defaults to 0.4):
            Weight of the auxiliary loss in the training loss.
        drop_path_prob (`float`, *optional*, defaults to 0.0):
            Drop-path probability of every non-identity edge in training. Training loops schedule it with
            `DartsForImageClassification.set_drop_path_prob`.
        label_smoothing (`float`, *optional*, defaults to 0.0):
            Label smoothing of the cross-entropy loss (0.1 in the paper's ImageNet recipe).
        image_size (`int`, *optional*):
            Side of the input images; defaults to 32 for the CIFAR stem and 224 for the ImageNet stem.
        image_mean (`list[float]`, *optional*):
            Per-channel mean used by the saved image processor; defaults to CIFAR-10's or ImageNet's.
        image_std (`list[float]`, *optional*):
            Per-channel standard deviation used by the saved image processor.
    """

    model_type = "darts"

    genotype: dict | str | Genotype | None = None
    init_channels: int = 36
    num_cells: int = 20
    num_channels: int = 3
    stem: str = "cifar"
    stem_multiplier: int = 3
    use_auxiliary_head: bool = True
    auxiliary_weight: float = 0.4
    drop_path_prob: float = 0.0
    label_smoothing: float = 0.0
    image_size: int | None = None
    image_mean: list[float] | None = None
    image_std: list[float] | None = None

    def __post_init__(self, **kwargs):
        self.genotype = as_genotype("DARTS_V2" if self.genotype is None else self.genotype).to_dict()
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {sorted(STEMS)}, got {self.stem!r}.")
        if self.num_cells < 1 or self.init_channels < 1 or self.num_channels < 1:
            raise ValueError(
                "num_cells, init_channels and num_channels must be positive, got "
                f"{self.num_cells}, {self.init_channels} and {self.num_channels}."
            )
        if self.init_channels % 2:
            # Reductions by FactorizedReduce split the channels into two halves.
            raise ValueError(f"init_channels must be even, got {self.init_channels}.")
        if not 0.0 <= self.drop_path_prob < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {self.drop_path_prob}.")
        default_size, default_mean, default_std = STEMS[self.stem]
        self.image_size = self.image_size or default_size
        if self.stem == "imagenet" and self.image_size < 32:
            # Its three stride-2 convolutions and the two reductions divide the image by 32.
            raise ValueError(
                f"The ImageNet stem needs images of at least 32x32 (224 in the paper), got {self.image_size}: use "
                "the CIFAR stem for small images, or resize them (--image_size)."
            )
        self.image_mean = list(
            self.image_mean or (default_mean if self.num_channels == 3 else [0.5] * self.num_channels)
        )
        self.image_std = list(self.image_std or (default_std if self.num_channels == 3 else [0.5] * self.num_channels))
        if len(self.image_mean) != self.num_channels or len(self.image_std) != self.num_channels:
            raise ValueError(
                f"image_mean and image_std need one value per input channel ({self.num_channels}), "
                f"got {self.image_mean} and {self.image_std}."
            )
        if self.id2label is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = 10
        super().__post_init__(**kwargs)

    def get_genotype(self) -> Genotype:
        """The cells as a `Genotype` (the config stores them as JSON)."""
        return Genotype.from_dict(self.genotype)

    @property
    def reduction_cells(self) -> tuple[int, ...]:
        """Indices of the reduction cells: at 1/3 and 2/3 of the depth."""
        return reduction_positions(self.num_cells)

    @property
    def auxiliary_head_fits(self) -> bool:
        """Whether the auxiliary head's fixed geometry (5x5 pooling to 2x2, then a 2x2 convolution) works at this
        image size: it needs 8x8 features from the CIFAR stem (32x32 images) or 7x7 from the ImageNet stem."""
        size = self.image_size if self.stem == "cifar" else math.ceil(self.image_size / 8)
        for index in range(self.auxiliary_cell + 1):
            if index in self.reduction_cells:
                size = math.ceil(size / 2)
        stride = 3 if self.stem == "cifar" else 2
        return size >= 5 and (size - 5) // stride == 1

    @property
    def auxiliary_cell(self) -> int:
        """Index of the cell whose output feeds the auxiliary head (the second reduction cell)."""
        return 2 * self.num_cells // 3


__all__ = ["DartsConfig", "reduction_positions"]
