"""Image datasets through `datasets`: columns, labels, decoding (in memory or streamed), augmentation."""

import datasets
import numpy as np
import pytest
import torch

from darts_hub.data.images import (
    BatchTransform,
    DataError,
    decode_images,
    find_columns,
    load_image_dataset,
    stratified_order,
    stratified_split,
)


def test_dataset_without_image_or_label_columns_is_refused():
    table = datasets.Dataset.from_dict({"text": ["a", "b"], "score": [0.1, 0.2]})
    with pytest.raises(DataError, match=r"image column among \['text', 'score'\]: name it with --image_column_name"):
        find_columns(table)
    images = datasets.Dataset.from_dict(
        {"picture": [np.zeros((4, 4), dtype=np.uint8)] * 2, "score": [0.1, 0.2]},
        features=datasets.Features({"picture": datasets.Image(), "score": datasets.Value("float32")}),
    )
    with pytest.raises(DataError, match="label column.*--label_column_name"):
        find_columns(images)
    with pytest.raises(DataError, match="no column 'labels'"):
        find_columns(images, label_column_name="labels")


def test_labels_outside_the_classes_are_refused():
    dataset = load_image_dataset()["train"].select(range(4))
    image, label = find_columns(dataset)
    with pytest.raises(DataError, match=r"outside the 2 classes 0\.\.1"):
        decode_images(dataset, image, label, class_names=["zero", "one"])


def test_hub_dataset_while_offline_fails_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="--train_dir"):
        load_image_dataset("uoft-cs/cifar10")


def test_images_of_different_sizes_need_image_size():
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    dataset = datasets.Dataset.from_dict(
        {"img": [np.zeros((8, 8, 3), np.uint8), np.zeros((6, 6, 3), np.uint8)], "label": [0, 1]}, features=features
    )
    with pytest.raises(DataError, match="pass --image_size"):
        decode_images(dataset, "img", "label")
    assert decode_images(dataset, "img", "label", image_size=4).images.shape == (2, 3, 4, 4)


def test_evaluation_crop_is_the_original_resize_then_centre_crop():
    from PIL import Image
    from torchvision import transforms

    generator = np.random.default_rng(0)
    pictures = [generator.integers(0, 256, shape, dtype=np.uint8) for shape in ((300, 200, 3), (120, 260, 3))]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    dataset = datasets.Dataset.from_dict({"img": pictures, "label": [0, 1]}, features=features)
    data = decode_images(dataset, "img", "label", image_size=224, crop_from=256)
    # The original evaluation transform of train_imagenet.py.
    original = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.PILToTensor()])
    for image, picture in zip(data.images, pictures):
        assert torch.equal(image, original(Image.fromarray(picture)))


def test_decoding_more_images_than_memory_holds_is_refused_before_any_work(monkeypatch):
    from darts_hub.data import images

    monkeypatch.setattr(images, "available_memory", lambda: 100_000)  # bytes; the split needs 1,437 x 8 x 8 x 3
    dataset = images.embedded_digits()["train"]
    image, label = find_columns(dataset)
    with pytest.raises(DataError, match=r"Decoding 1,437 images at 8x8 takes 0.000257 GiB.*--max_train_samples"):
        decode_images(dataset, image, label)
    assert decode_images(dataset.select(range(500)), image, label).images.shape == (500, 3, 8, 8)  # 96,000 bytes


def test_streamed_images_are_the_decoded_ones(tmp_path):
    from darts_hub.data.images import StreamedImages, make_loader

    generator = np.random.default_rng(0)
    shapes = [(30, 20, 3), (12, 26, 3), (16, 16, 3), (40, 40, 3)] * 3
    pictures = [generator.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    dataset = datasets.Dataset.from_dict({"img": pictures, "label": [i % 3 for i in range(12)]}, features=features)
    for options in (dict(image_size=16), dict(image_size=16, crop_from=18)):
        decoded = decode_images(dataset, "img", "label", class_names=["a", "b", "c"], **options)
        streamed = StreamedImages(dataset, "img", "label", class_names=["a", "b", "c"], num_workers=2, **options)
        assert streamed.image_size == decoded.image_size == 16 and torch.equal(streamed.labels, decoded.labels)
        assert streamed.statistics() == decoded.statistics()
        # Decoded by two worker processes, in the shuffled order of the in-memory loader.
        for (a, a_labels), (b, b_labels) in zip(make_loader(streamed, 5, shuffle_seed=1), make_loader(decoded, 5, 1)):
            assert torch.equal(a, b) and torch.equal(a_labels, b_labels)
        indices = torch.tensor([3, 7])
        assert torch.equal(
            torch.stack([streamed.subset(indices)[i][0] for i in range(2)]), decoded.subset(indices).images
        )
    uniform = dataset.select([2, 6])  # the 16x16 images: no --image_size needed
    assert torch.equal(
        StreamedImages(uniform, "img", "label", None, ["a", "b", "c"])[1][0],
        decode_images(uniform, "img", "label").images[1],
    )
    with pytest.raises(DataError, match="but the first is 30x20|pass --image_size"):
        StreamedImages(dataset, "img", "label", None, ["a", "b", "c"])


def test_image_folder_dataset(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for index in range(3):
            Image.fromarray(np.full((10, 10, 3), index * 40, np.uint8)).save(tmp_path / label / f"{index}.png")
    dataset = load_image_dataset(train_dir=str(tmp_path))["train"]
    image, label = find_columns(dataset)
    data = decode_images(dataset, image, label)
    assert data.images.shape == (6, 3, 10, 10) and data.class_names == ["cat", "dog"]


def test_batch_augmentation_crop_flip_cutout():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    plain = BatchTransform([0.5] * 3, [0.25] * 3)
    torch.testing.assert_close(plain(images, train=True), (images.float() / 255 - 0.5) / 0.25)
    torch.testing.assert_close(plain(images, train=False), (images.float() / 255 - 0.5) / 0.25)

    flipped = BatchTransform([0.0] * 3, [1.0] * 3, horizontal_flip=True)(images, train=True) * 255
    same = (flipped == images.float()).flatten(1).all(1)
    mirrored = (flipped == images.float().flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored) and 10 < mirrored.sum() < 54

    cropped = BatchTransform([0.0] * 3, [1.0] * 3, crop_padding=2)(images, train=True) * 255
    # Every crop is the image shifted by at most 2 pixels, zero-padded.
    padded = torch.nn.functional.pad(images.float(), (2, 2, 2, 2))
    windows = padded.unfold(2, 8, 1).unfold(3, 8, 1)  # [batch, channels, 5, 5, 8, 8]
    found = (windows == cropped[:, :, None, None]).all(dim=(-1, -2)).all(dim=1).flatten(1).any(1)
    assert found.all()

    cut = BatchTransform([0.5] * 3, [0.25] * 3, cutout=4)(images, train=True)
    zero_pixels = (cut == 0).all(dim=1).flatten(1).sum(1)
    assert torch.all(zero_pixels <= 16) and torch.all(zero_pixels >= 4)  # a 4x4 square, clipped at the border


def test_batch_augmentation_resized_crop_and_colour_jitter():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    transform = BatchTransform([0.0] * 3, [1.0] * 3, random_resized_crop=True, horizontal_flip=True, color_jitter=0.4)
    out = transform(images, train=True)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images.float() / 255)
    gray = torch.full((2, 3, 8, 8), 128, dtype=torch.uint8)
    jitter_only = BatchTransform([0.0] * 3, [1.0] * 3, color_jitter=0.4)(gray, train=True)
    # A gray image stays gray under saturation and hue changes; only brightness and contrast move it.
    assert torch.allclose(jitter_only[:, 0], jitter_only[:, 1], atol=1e-5)


def test_numpy_arrays_load_as_a_dataset_with_their_exact_pixels(tmp_path):
    # The form of the CIFAR-10 subsets: x uint8 [N, H, W, C], y labels; the validation arrays become the test split.
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(12) % 3
    np.savez(tmp_path / "train.npz", x=images, y=labels)
    np.savez(tmp_path / "test.npz", x=images[:4], y=labels[:4])
    dataset = load_image_dataset(
        train_arrays=str(tmp_path / "train.npz"),
        validation_arrays=str(tmp_path / "test.npz"),
        class_names=["a", "b", "c"],
    )
    assert list(dataset) == ["train", "test"] and dataset["train"].features["label"].names == ["a", "b", "c"]
    decoded = decode_images(dataset["train"], *find_columns(dataset["train"]))
    assert torch.equal(decoded.images, torch.from_numpy(images).permute(0, 3, 1, 2))
    assert decoded.labels.tolist() == labels.tolist()


def test_stratified_order_keeps_every_class_in_proportion_in_every_prefix():
    labels = torch.tensor([0] * 30 + [1] * 60 + [2] * 10)  # stored class by class, as an image folder is
    order = stratified_order(labels, seed=0)
    assert sorted(order.tolist()) == list(range(100))
    for prefix in (3, 10, 50, 73, 99):
        counts = torch.bincount(labels[order[:prefix]], minlength=3)
        assert torch.all((counts - prefix * torch.tensor([0.3, 0.6, 0.1])).abs() <= 1), (prefix, counts)
    assert torch.equal(order, stratified_order(labels, seed=0))
    other = stratified_order(labels, seed=1)
    assert not torch.equal(order, other)
    # The seed chooses which images of a class come first, not only the interleaving.
    assert set(order[:50].tolist()) != set(other[:50].tolist())


def test_stratified_split_is_the_stratified_prefix_and_the_rest_in_ascending_order():
    labels = torch.tensor([0] * 30 + [1] * 60 + [2] * 10)
    chosen, rest = stratified_split(labels, 40, seed=3)
    assert chosen.tolist() == sorted(stratified_order(labels, seed=3)[:40].tolist())
    assert rest.tolist() == sorted(set(range(100)) - set(chosen.tolist()))
    assert torch.bincount(labels[chosen], minlength=3).tolist() == [12, 24, 4]
