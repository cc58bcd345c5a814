"""What the loops feed their steps: image splits decoded (or streamed) for a run, the batch transform, and each
process's columns of a text stream and of the recurrent states."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import torch
from accelerate import Accelerator

from ..data.images import (
    BatchTransform,
    ImageTensors,
    StreamedImages,
    class_names_of,
    decode_images,
    find_columns,
    labels_of,
    load_image_dataset,
    stratified_split,
)
from ..data.text import batchify


@dataclass
class ImageSplits:
    """An image dataset opened once for a run: its splits, the image and label columns, and the training split's
    classes, with which every split is decoded."""

    dataset: datasets.DatasetDict
    image_column: str
    label_column: str
    class_names: list[str]
    stream_workers: int | None = None  # with --stream_images: decoded while read, by this many workers

    def decode(
        self, split: str, image_size: int | None = None, crop_from: int | None = None
    ) -> ImageTensors | StreamedImages:
        """The `split` decoded (or prepared to be decoded while read) at `image_size` (default: the images' own
        size), resized to `crop_from` and centre-cropped if given (the ImageNet evaluation)."""
        columns = (self.dataset[split], self.image_column, self.label_column, image_size, self.class_names)
        if self.stream_workers is None:
            return decode_images(*columns, crop_from=crop_from)
        return StreamedImages(*columns, crop_from=crop_from, num_workers=self.stream_workers)


def open_image_splits(
    accelerator: Accelerator,
    splits: tuple[str, ...],
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    max_train_samples: int | None = None,
    data_seed: int = 0,
    stream_workers: int | None = None,
    **source,
) -> ImageSplits:
    """Open the image dataset `source` names (`load_image_dataset`'s arguments; the main process first, so that a
    download or cache build happens once), check that it has `splits`, find the columns and the classes, and keep
    at most `max_train_samples` training images, a stratified random choice (`data_seed`). `stream_workers`:
    decode while reading, in that many processes, instead of once into memory."""
    with accelerator.main_process_first():
        dataset = load_image_dataset(**source)
    missing = [split for split in splits if split not in dataset]
    if missing:
        raise KeyError(f"The dataset has no split {missing}; its splits are {list(dataset)}.")
    train = dataset["train"]
    image_column, label_column = find_columns(train, image_column, label_column)
    class_names = class_names_of(train, label_column)
    if max_train_samples is not None and max_train_samples < len(train):
        chosen, _ = stratified_split(labels_of(train, label_column, class_names), max_train_samples, data_seed)
        dataset["train"] = train.select(chosen.tolist())
    return ImageSplits(dataset, image_column, label_column, class_names, stream_workers)


def normalisation(
    data: ImageTensors | StreamedImages, image_mean: list[float] | None, image_std: list[float] | None
) -> tuple[list[float], list[float]]:
    """The per-channel mean and standard deviation to normalise with: `image_mean`/`image_std` when given (the
    original uses fixed CIFAR-10 constants), else the training images' own statistics."""
    given = {"--image_mean": image_mean, "--image_std": image_std}
    if all(values is None for values in given.values()):
        return data.statistics()
    for flag, values in given.items():
        if values is None or len(values) != data.num_channels:
            raise ValueError(
                f"{flag} needs one value per channel ({data.num_channels} for these images), got {values}: give "
                "both --image_mean and --image_std, or neither to use the images' own statistics."
            )
    if min(image_std) <= 0:
        raise ValueError(f"--image_std must be positive, got {image_std}.")
    return list(image_mean), list(image_std)


def batch_transform(
    data: ImageTensors | StreamedImages,
    mean: list[float],
    std: list[float],
    channels_last: bool,
    crop_padding: int | None = None,
    **augmentation,
) -> BatchTransform:
    """Augmentation and normalisation by `mean` and `std`: padded random crops (`crop_padding` pixels; None: an
    eighth of the image size, CIFAR's 4) and `augmentation` (`BatchTransform`'s flips, cutout, random resized
    crops, colour jitter)."""
    return BatchTransform(
        mean,
        std,
        crop_padding=data.image_size // 8 if crop_padding is None else crop_padding,
        channels_last=channels_last,
        **augmentation,
    )


def process_streams(stream: torch.Tensor, streams: int, accelerator: Accelerator) -> torch.Tensor:
    """This process's `streams` columns (`[length, streams]`, on its device) of a token stream cut into `streams` per
    process: the processes read their own parts of the text, in step."""
    columns = batchify(stream, streams * accelerator.num_processes)
    rank = accelerator.process_index
    return columns[:, rank * streams : (rank + 1) * streams].to(accelerator.device)


def own_states(states: torch.Tensor | None, accelerator: Accelerator) -> torch.Tensor | None:
    """This process's rows of recurrent states gathered from all processes (`accelerator.gather`, as kept in
    checkpoints); None (a fresh start) stays None."""
    if states is None:
        return None
    return states.chunk(accelerator.num_processes)[accelerator.process_index].to(accelerator.device)


__all__ = [
    "batch_transform",
    "ImageSplits",
    "normalisation",
    "open_image_splits",
    "own_states",
    "process_streams",
]
