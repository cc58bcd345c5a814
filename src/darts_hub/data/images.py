"""Image classification data through `datasets`: Hub datasets, local folders, and the embedded default.

Images are decoded once into a uint8 tensor `[N, C, H, W]` (or, for datasets larger than memory, into the same
tensors while they are read: `StreamedImages`); augmentation (random crop with padding, horizontal flip, cutout) and
normalisation run on whole batches on the training device, so the data pipeline is not the bottleneck.
"""

from __future__ import annotations

import copy
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import psutil
import torch
from PIL import Image as PILImage
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset
from torchvision.transforms.functional import InterpolationMode, center_crop, resize
from tqdm.auto import tqdm


logger = logging.getLogger(__name__)

DIGITS = "digits"
IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "picture")
LABEL_COLUMN_CANDIDATES = ("label", "labels", "fine_label", "class", "target")
DECODE_BATCH = 256  # images read from the dataset at a time while decoding


class DataError(ValueError):
    """The data cannot be used as asked; the message says what to change."""


def embedded_digits() -> datasets.DatasetDict:
    """scikit-learn's bundled handwritten digits (1,797 real 8x8 grayscale images, 10 classes), in the form of a Hub
    image classification dataset (`img` Image column, `label` ClassLabel column) with a stratified 80/20 train/test
    split. It ships with scikit-learn, so it works offline."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; scale them to 0..255 as an 8-bit image.
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    dataset = datasets.Dataset.from_dict(
        {"img": [PILImage.fromarray(image, mode="L") for image in pixels], "label": digits.target.tolist()},
        features=features,
    )
    return dataset.train_test_split(test_size=0.2, seed=0, stratify_by_column="label")


def arrays_dataset(path: str, class_names: list[str] | None = None) -> datasets.Dataset:
    """An image classification dataset from a NumPy `.npz` file holding `x`, uint8 images `[N, H, W, C]` (or
    `[N, H, W]`, grayscale), and `y`, integer labels `0..K-1` (class names `class_names`, else the label numbers), in
    the form of a Hub dataset (`img` Image column, `label` ClassLabel column), so that it goes through the same code
    as any other. The images are stored losslessly: decoding gives the arrays' pixels back."""
    with np.load(path, allow_pickle=False) as arrays:
        missing = [key for key in ("x", "y") if key not in arrays]
        if missing:
            raise DataError(
                f"{path} has the arrays {sorted(arrays)} but needs x (uint8 images [N, H, W, C]) and y (labels): "
                f"missing {missing}."
            )
        images, labels = arrays["x"], arrays["y"]
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != len(labels):
        raise DataError(
            f"{path}: x must be uint8 images [N, H, W, C] or [N, H, W] with one label in y each; got x {images.dtype} "
            f"{images.shape} and y {labels.shape}."
        )
    num_classes = int(labels.max()) + 1
    names = class_names or [str(label) for label in range(num_classes)]
    if labels.min() < 0 or num_classes > len(names):
        raise DataError(f"{path}: labels run from {labels.min()} to {labels.max()}, for {len(names)} class names.")
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    pictures = [PILImage.fromarray(image) for image in images]
    return datasets.Dataset.from_dict({"img": pictures, "label": labels.tolist()}, features=features)


def load_image_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    cache_dir: str | None = None,
    train_arrays: str | None = None,
    validation_arrays: str | None = None,
    class_names: list[str] | None = None,
) -> datasets.DatasetDict:
    """Load an image classification dataset: a Hub (or local) dataset by name, an image folder, NumPy arrays
    (`arrays_dataset`; the validation arrays become the test split), or, with none of them, the embedded digits."""
    if sum(bool(source) for source in (dataset_name, train_dir, train_arrays)) > 1:
        raise DataError("Pass one of --dataset_name, --train_dir and --train_arrays, not several.")
    if train_arrays:
        splits = {"train": arrays_dataset(train_arrays, class_names)}
        if validation_arrays:
            splits["test"] = arrays_dataset(validation_arrays, class_names)
        return datasets.DatasetDict(splits)
    if train_dir:
        classes = (
            sorted(path.name for path in Path(train_dir).iterdir() if path.is_dir())
            if Path(train_dir).is_dir()
            else []
        )
        if len(classes) < 2:
            raise DataError(
                f"--train_dir {train_dir} has {len(classes)} class(es) {classes}: classification needs at least two "
                "(an image folder needs one sub-folder per class, e.g. train/cat/*.png and train/dog/*.png)."
            )
        data_files = {"train": f"{train_dir}/**"}
        if validation_dir:
            data_files["test"] = f"{validation_dir}/**"
        return datasets.load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)
    if not dataset_name or dataset_name == DIGITS:
        return embedded_digits()
    try:
        return datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    except (ConnectionError, OSError) as error:
        raise DataError(
            f"Could not load the dataset {dataset_name!r}: {error}\n"
            "The Hugging Face Hub is unreachable or offline mode is on (HF_HUB_OFFLINE=1). Download the dataset "
            "beforehand (it is then read from the cache), pass a local folder with --train_dir, or leave out "
            "--dataset_name to use the embedded digits."
        ) from error


def find_columns(
    dataset: datasets.Dataset, image_column_name: str | None = None, label_column_name: str | None = None
) -> tuple[str, str]:
    """The image and label columns: the ones named, else an `Image` / `ClassLabel` feature or a usual name."""
    features = dataset.features

    def pick(name, wanted_type, candidates, what, flag):
        if name is not None:
            if name not in features:
                raise DataError(f"The dataset has no column {name!r} ({flag}); its columns are {list(features)}.")
            return name
        typed = [column for column, feature in features.items() if isinstance(feature, wanted_type)]
        named = [column for column in candidates if column in features]
        if typed or named:
            return (typed or named)[0]
        raise DataError(f"Could not find the {what} column among {list(features)}: name it with {flag}.")

    image = pick(image_column_name, datasets.Image, IMAGE_COLUMN_CANDIDATES, "image", "--image_column_name")
    label = pick(label_column_name, datasets.ClassLabel, LABEL_COLUMN_CANDIDATES, "label", "--label_column_name")
    if not isinstance(features[image], datasets.Image):
        raise DataError(
            f"Column {image!r} holds {features[image]}, not images: name the image column with --image_column_name."
        )
    return image, label


@dataclass
class ImageTensors:
    """Decoded images `[N, C, H, W]` (uint8) with their labels `[N]` (int64) and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    @property
    def num_channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the pixels in [0, 1] (for normalisation)."""
        pixels = self.images.transpose(0, 1).reshape(self.num_channels, -1).double() / 255
        return pixels.mean(dim=1).tolist(), pixels.std(dim=1).tolist()

    def subset(self, indices: torch.Tensor) -> ImageTensors:
        return ImageTensors(self.images[indices], self.labels[indices], self.class_names)

    def torch_dataset(self) -> TensorDataset:
        return TensorDataset(self.images, self.labels)


class StreamedImages(Dataset):
    """The images of a dataset split decoded when they are read (in the DataLoader's `num_workers` processes) instead
    of once into memory, for datasets that do not fit (ImageNet): the same uint8 tensors as `decode_images`, and the
    same interface as `ImageTensors`."""

    def __init__(self, dataset, image_column, label_column, image_size, class_names, crop_from=None, num_workers=4):
        self.image_size = square_size(dataset, image_column, image_size, crop_from)[0]
        self.resize = image_size is not None  # else every image must have the first one's size
        self.dataset, self.image_column = dataset.select_columns([image_column]), image_column
        self.labels = labels_of(dataset, label_column, class_names)
        self.class_names, self.crop_from = class_names, crop_from
        self.num_workers, self.num_channels = num_workers, 3

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.dataset[index][self.image_column]
        size, image_size = (self.image_size, self.image_size), self.image_size if self.resize else None
        return to_pixels(image, size, image_size, self.crop_from, index), self.labels[index]

    def statistics(self, max_images: int = 2000) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of up to `max_images` evenly spaced images."""
        indices = torch.linspace(0, len(self) - 1, min(max_images, len(self))).long().unique()
        sample = torch.stack([self[index][0] for index in indices.tolist()])
        return ImageTensors(sample, self.labels[indices], self.class_names).statistics()

    def subset(self, indices: torch.Tensor) -> StreamedImages:
        subset = copy.copy(self)
        subset.dataset, subset.labels = self.dataset.select(indices.tolist()), self.labels[indices]
        return subset

    def torch_dataset(self) -> StreamedImages:
        return self


def stratified_order(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """The indices of `labels` shuffled by `seed` and interleaved by class, so that every prefix holds each class in
    proportion (to within one image): the first N of them are a stratified random subsample, and a cut anywhere
    divides every class in the same ratio. Datasets are often stored class by class (an image folder always is):
    taking "the first N images" or cutting the list in two would leave classes out."""
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(labels), generator=generator)
    shuffled_labels = labels[shuffled]
    # Each image's place within its class, as a fraction of the class's size: sorting by it interleaves the classes.
    place = torch.empty(len(labels), dtype=torch.float64)
    for label in shuffled_labels.unique():
        members = shuffled_labels == label
        count = int(members.sum())
        place[members] = (torch.arange(count, dtype=torch.float64) + 0.5) / count
    return shuffled[torch.sort(place, stable=True).indices]


def stratified_split(labels: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A stratified random choice of `size` of the `labels`' indices (`stratified_order`'s first `size`) and the
    rest, each in ascending order: the subsample of `--max_train_samples` and the weight/architecture cut of a
    search are both this, so that whoever needs to reproduce them (the comparison with the original) calls it too."""
    order = stratified_order(labels, seed)
    return order[:size].sort().values, order[size:].sort().values


def available_memory() -> int:
    """Bytes of memory the system can still give this process."""
    return psutil.virtual_memory().available


def check_memory_for(num_images: int, image_size: int) -> None:
    """Refuse, before any work, to decode more images than memory holds (they are decoded once, as uint8)."""
    needed, available = num_images * 3 * image_size * image_size, available_memory()
    if needed > available:
        raise DataError(
            f"Decoding {num_images:,} images at {image_size}x{image_size} takes {needed / 2**30:.3g} GiB of memory, "
            f"more than the {available / 2**30:.3g} GiB available (images are decoded once into memory): pass "
            "--stream_images to decode them while training, or --max_train_samples or a smaller --image_size."
        )


def class_names_of(dataset: datasets.Dataset, label_column: str) -> list[str]:
    """The names of a `ClassLabel` column, else its distinct values in order (as strings); reads no image."""
    label_feature = dataset.features[label_column]
    if isinstance(label_feature, datasets.ClassLabel):
        names = list(label_feature.names)
    elif isinstance(label_feature, datasets.Value) and label_feature.dtype.startswith(("int", "uint")):
        names = [str(label) for label in sorted(set(dataset[label_column]))]
    else:
        raise DataError(
            f"Column {label_column!r} holds {label_feature}, not class labels (integers or a ClassLabel): name the "
            "label column with --label_column_name, or cast it with `dataset.cast_column(name, ClassLabel(...))`."
        )
    if len(names) < 2:
        raise DataError(
            f"Column {label_column!r} has {len(names)} class(es) {names}: classification needs at least two (an image "
            "folder needs one sub-folder per class, e.g. train/cat/*.png and train/dog/*.png)."
        )
    return names


def decode_images(
    dataset: datasets.Dataset,
    image_column: str,
    label_column: str,
    image_size: int | None = None,
    class_names: list[str] | None = None,
    crop_from: int | None = None,
) -> ImageTensors:
    """Decode every image once into one uint8 RGB tensor `[N, 3, H, W]`: resized to `image_size` squares if given
    (else every image must have the size of the first), or, with `crop_from`, resized to that shorter side and
    centre-cropped to `image_size` (the ImageNet evaluation transform: 256, then 224).

    Grayscale images become three equal channels: `pipeline("image-classification")` always feeds RGB images, so a
    network trained on RGB works there unchanged.
    """
    size = square_size(dataset, image_column, image_size, crop_from)
    if class_names is None:
        class_names = class_names_of(dataset, label_column)
    labels = labels_of(dataset, label_column, class_names)
    check_memory_for(len(dataset), size[0])
    pixels = torch.empty(len(dataset), 3, size[0], size[0], dtype=torch.uint8)
    batches = dataset.select_columns([image_column]).iter(batch_size=DECODE_BATCH)
    position = 0
    try:
        for batch in tqdm(batches, total=math.ceil(len(dataset) / DECODE_BATCH), desc="decoding images", leave=False):
            for image in batch[image_column]:
                pixels[position] = to_pixels(image, size, image_size, crop_from, position)
                position += 1
    except (OSError, SyntaxError, ValueError) as error:  # what PIL raises for a broken file
        raise DataError(f"Could not decode {describe_image(dataset, image_column, position)}: {error}") from error
    return ImageTensors(pixels, labels, class_names)


def describe_image(dataset: datasets.Dataset, image_column: str, position: int) -> str:
    """'image N (its file)' of the first image from `position` on that does not decode, for error messages."""
    raw = dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
    for index in range(position, min(position + DECODE_BATCH, len(raw))):
        entry = raw[index][image_column]
        try:
            with PILImage.open(entry["path"] if entry.get("bytes") is None else io.BytesIO(entry["bytes"])) as image:
                image.load()
        except (OSError, SyntaxError, ValueError):
            return f"image {index} ({entry.get('path') or 'embedded bytes'})"
    return f"an image after image {position}"


def square_size(
    dataset: datasets.Dataset, image_column: str, image_size: int | None, crop_from: int | None
) -> tuple[int, int]:
    """The size images are decoded at: `image_size`, else the first image's, which must be square."""
    if len(dataset) == 0:
        raise DataError("The dataset split is empty.")
    if crop_from is not None and not image_size:
        raise ValueError("crop_from needs the image_size to crop to.")
    size = (image_size, image_size) if image_size else dataset[0][image_column].size
    if size[0] != size[1]:
        raise DataError(f"Images are {size[0]}x{size[1]}; pass --image_size to resize them to squares.")
    return size


def labels_of(dataset: datasets.Dataset, label_column: str, class_names: list[str]) -> torch.Tensor:
    """The labels as int64, checked against the classes."""
    labels = torch.as_tensor(dataset[label_column], dtype=torch.int64)
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DataError(
            f"Labels of column {label_column!r} range over {labels.min().item()}..{labels.max().item()}, outside the "
            f"{len(class_names)} classes 0..{len(class_names) - 1}."
        )
    return labels


def to_pixels(image, size: tuple[int, int], image_size: int | None, crop_from: int | None, position: int):
    """One image as a uint8 RGB tensor `[3, H, W]` of `size`: resized to it (if `image_size` allows), or, with
    `crop_from`, resized to that shorter side and centre-cropped to `image_size`."""
    image = image.convert("RGB")
    if crop_from is not None:
        image = center_crop(resize(image, crop_from, InterpolationMode.BILINEAR), [image_size, image_size])
    elif image.size != size:
        if not image_size:
            raise DataError(
                f"Image {position} is {image.size[0]}x{image.size[1]} but the first is {size[0]}x{size[1]}: "
                "pass --image_size to resize all images to one size."
            )
        image = image.resize(size, PILImage.BILINEAR)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


class EpochShuffleSampler(Sampler[int]):
    """A random order that depends only on (seed, epoch): identical on every process and after a resume, and it
    does not draw from the global random generator."""

    def __init__(self, num_samples: int, seed: int, stream: int = 0):
        self.num_samples, self.seed, self.stream, self.epoch = num_samples, seed, stream, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stream * 10_007 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


def make_loader(
    data: ImageTensors | StreamedImages,
    batch_size: int,
    shuffle_seed: int | None = None,
    stream: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader of (uint8 images, labels) batches; shuffled by an `EpochShuffleSampler` when a seed is given;
    streamed images are decoded in `data.num_workers` worker processes."""
    sampler = EpochShuffleSampler(len(data.labels), shuffle_seed, stream) if shuffle_seed is not None else None
    num_workers = getattr(data, "num_workers", 0)
    return DataLoader(
        data.torch_dataset(),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        # Every new iterator draws a seed from its loader's generator: a private one keeps the global random state
        # (augmentation, drop-path) independent of how often iterators are created, so a resumed run matches.
        generator=torch.Generator(),
    )


class BatchTransform:
    """Augmentation and normalisation of whole uint8 batches on their device.

    Training: a random crop after zero padding by `crop_padding` pixels (CIFAR) or a random resized crop (ImageNet:
    8%-100% of the area, aspect ratio 3/4-4/3, resampled bilinearly to the input size), a random horizontal flip,
    colour jitter (ImageNet: brightness, contrast and saturation factors in [1 - s, 1 + s], a hue rotation of up to
    s / 2 of a turn in YIQ space, applied in this order), and cutout (a `cutout` x `cutout` square zeroed after
    normalisation, DeVries & Taylor, as in the DARTS training recipe). Evaluation: normalisation only.
    """

    def __init__(
        self,
        mean,
        std,
        crop_padding: int = 0,
        horizontal_flip: bool = False,
        cutout: int = 0,
        channels_last: bool = False,
        random_resized_crop: bool = False,
        color_jitter: float = 0.0,
    ):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding, self.horizontal_flip, self.cutout = crop_padding, horizontal_flip, cutout
        self.random_resized_crop, self.color_jitter = random_resized_crop, color_jitter
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        x = images.float().div_(255)
        if train:
            x = self._resized_crop(x) if self.random_resized_crop else self._crop_and_flip(x)
            if self.random_resized_crop and self.horizontal_flip:
                x = self._flip(x)
            if self.color_jitter:
                x = self._jitter_colours(x)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if train and self.cutout:
            x = self._cutout(x)
        return x.contiguous(memory_format=self.memory_format)

    def _crop_and_flip(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        device = x.device
        if self.crop_padding:
            p = self.crop_padding
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            top = torch.randint(0, 2 * p + 1, (batch, 1), device=device) + torch.arange(height, device=device)
            left = torch.randint(0, 2 * p + 1, (batch, 1), device=device) + torch.arange(width, device=device)
            rows = torch.arange(batch, device=device)[:, None, None]
            # [batch, height, width, channels] -> [batch, channels, height, width]
            x = padded.permute(0, 2, 3, 1)[rows, top[:, :, None], left[:, None, :]].permute(0, 3, 1, 2)
        return self._flip(x) if self.horizontal_flip else x

    @staticmethod
    def _flip(x: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    @staticmethod
    def _resized_crop(x: torch.Tensor) -> torch.Tensor:
        """Inception-style random resized crops of every image, by `roi_align` (bilinear) in one call."""
        from torchvision.ops import roi_align

        batch, _, height, width = x.shape
        device = x.device
        area = torch.empty(batch, device=device).uniform_(0.08, 1.0) * height * width
        log_ratio = torch.empty(batch, device=device).uniform_(math.log(3 / 4), math.log(4 / 3))
        crop_w = torch.sqrt(area * torch.exp(log_ratio)).clamp(1, width)
        crop_h = torch.sqrt(area / torch.exp(log_ratio)).clamp(1, height)
        left = torch.rand(batch, device=device) * (width - crop_w)
        top = torch.rand(batch, device=device) * (height - crop_h)
        boxes = torch.stack(
            [torch.arange(batch, device=device, dtype=x.dtype), left, top, left + crop_w, top + crop_h], dim=1
        )
        return roi_align(x, boxes, output_size=(height, width), spatial_scale=1.0, sampling_ratio=2, aligned=True)

    def _jitter_colours(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        strength = self.color_jitter

        def factors():
            return torch.empty(batch, 1, 1, 1, device=x.device).uniform_(1 - strength, 1 + strength)

        gray_weights = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        x = (x * factors()).clamp(0, 1)  # brightness
        mean_gray = (x * gray_weights).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
        x = ((x - mean_gray) * factors() + mean_gray).clamp(0, 1)  # contrast
        gray = (x * gray_weights).sum(1, keepdim=True)
        x = ((x - gray) * factors() + gray).clamp(0, 1)  # saturation
        # Hue: rotate the chroma plane of YIQ by up to strength / 2 of a turn.
        angle = torch.empty(batch, device=x.device).uniform_(-strength / 2, strength / 2) * 2 * math.pi
        to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device
        )
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.zeros(batch, 3, 3, device=x.device)
        rotation[:, 0, 0] = 1
        rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
        transform = torch.linalg.inv(to_yiq) @ rotation @ to_yiq  # [batch, 3, 3]
        return torch.einsum("bij,bjhw->bihw", transform, x).clamp(0, 1)

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Zero (after normalisation, as the original) rows and columns [c - size // 2, c + size // 2) around a
        random centre c, clipped at the border."""
        batch, _, height, width = x.shape
        device = x.device
        half = self.cutout // 2
        centre_y = torch.randint(0, height, (batch, 1), device=device)
        centre_x = torch.randint(0, width, (batch, 1), device=device)
        ys, xs = torch.arange(height, device=device), torch.arange(width, device=device)
        in_rows = (ys >= centre_y - half) & (ys < centre_y + half)  # [batch, height]
        in_cols = (xs >= centre_x - half) & (xs < centre_x + half)  # [batch, width]
        inside = in_rows[:, :, None] & in_cols[:, None, :]
        return x * (~inside)[:, None].to(x.dtype)


__all__ = [
    "BatchTransform",
    "DataError",
    "EpochShuffleSampler",
    "ImageTensors",
    "class_names_of",
    "decode_images",
    "StreamedImages",
    "embedded_digits",
    "find_columns",
    "arrays_dataset",
    "load_image_dataset",
    "make_loader",
    "stratified_order",
    "stratified_split",
]
