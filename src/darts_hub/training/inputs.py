"""What the loops feed their steps: image splits decoded (or streamed) for a run, the batch transform, and each
process's columns of a text stream and of the recurrent states."""

from __future__ import annotations

import functools

import torch
from accelerate import Accelerator

from ..data.images import (
    BatchTransform,
    ImageTensors,
    StreamedImages,
    class_names_of,
    decode_images,
    find_columns,
    load_image_dataset,
)
from ..data.text import batchify
from .arguments import ImageDataArguments


def load_image_splits(
    args: ImageDataArguments,
    accelerator: Accelerator,
    splits: tuple[str, ...] = ("train",),
    eval_size: int | None = None,
    eval_crop_from: int | None = None,
) -> dict[str, ImageTensors | StreamedImages]:
    """Decode the requested splits (with --stream_images: prepare them to be decoded while read), all with the
    training split's classes (the training images are decoded only if requested), the main process first so that a
    download or cache build happens once. Splits other than train are decoded at `eval_size` (default:
    --image_size, else the training images' size), resized to `eval_crop_from` and centre-cropped if that is given
    (the ImageNet evaluation)."""
    with accelerator.main_process_first():
        dataset = load_image_dataset(args.dataset_name, args.dataset_config_name, args.train_dir, args.validation_dir)
        missing = [split for split in splits if split not in dataset]
        if missing:
            raise KeyError(f"The dataset has no split {missing}; its splits are {list(dataset)}.")
        train = dataset["train"]
        if args.max_train_samples is not None:
            train = train.select(range(min(args.max_train_samples, len(train))))
        image_column, label_column = find_columns(train, args.image_column_name, args.label_column_name)
        class_names = class_names_of(train, label_column)
        if args.stream_images:
            decode = functools.partial(StreamedImages, num_workers=args.dataloader_num_workers)
        else:
            decode = decode_images
        decoded = {}
        if "train" in splits:
            decoded["train"] = decode(train, image_column, label_column, args.image_size, class_names)
        image_size = eval_size or args.image_size or (decoded["train"].image_size if decoded else None)
        for split in splits:
            if split != "train":
                decoded[split] = decode(
                    dataset[split], image_column, label_column, image_size, class_names, crop_from=eval_crop_from
                )
    return decoded


def batch_transform(
    args: ImageDataArguments,
    data: ImageTensors | StreamedImages,
    channels_last: bool,
    mean=None,
    std=None,
    **augmentation,
) -> BatchTransform:
    """Augmentation and normalisation (by the data's own statistics unless given); `augmentation` adds the
    training recipe's (cutout, random resized crops, colour jitter)."""
    if mean is None or std is None:
        mean, std = data.statistics()
    return BatchTransform(
        mean,
        std,
        crop_padding=data.image_size // 8 if args.crop_padding is None else args.crop_padding,
        horizontal_flip=(not args.uses_digits) if args.horizontal_flip is None else args.horizontal_flip,
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
    "load_image_splits",
    "own_states",
    "process_streams",
]
