import json
import logging
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

from darts_hub import DartsConfig, DartsForImageClassification, count_mult_adds, count_parameters
from darts_hub.data.images import BatchTransform, DataError, decode_images, find_columns, load_image_dataset
from darts_hub.genotypes import PRIMITIVES, Genotype
from darts_hub.hub import HubPushError, push_folder
from darts_hub.search.architect import Architect
from darts_hub.search.cnn import DartsSearchConfig, DartsSearchNetwork, MixedOp
from darts_hub.training.search_loop import SearchArguments, run_search


TESTS = Path(__file__).parent
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs the graphviz `dot` binary")


def tiny_supernet(**kwargs):
    settings = dict(init_channels=4, num_cells=3, num_labels=3, image_size=8, steps=2, multiplier=2)
    return DartsSearchNetwork(DartsSearchConfig(**{**settings, **kwargs}))


def tiny_search_args(output_dir, **kwargs):
    settings = dict(
        output_dir=str(output_dir),
        max_train_samples=256,
        epochs=2,
        batch_size=32,
        init_channels=4,
        num_cells=3,
        steps=2,
        multiplier=2,
        train_init_channels=8,
        train_num_cells=3,
        seed=0,
    )
    return SearchArguments(**{**settings, **kwargs})


def test_supernet_counts_match_the_original_search_network():
    model = DartsSearchNetwork(DartsSearchConfig())
    assert count_parameters(model) == 1_930_618
    assert sum(p.numel() for p in model.arch_parameters()) == 224 == 2 * 14 * 8
    assert count_mult_adds(model) == 300_255_744
    weights = {id(p) for p in model.weight_parameters()}
    assert not weights & {id(p) for p in model.arch_parameters()}
    assert len(weights) + 2 == len(list(model.parameters()))


def test_alphas_start_small_and_are_saved_with_the_model(tmp_path):
    torch.manual_seed(0)
    model = DartsSearchNetwork(DartsSearchConfig())
    assert 0.7e-3 < model.alphas_normal.std().item() < 1.3e-3
    assert not torch.equal(model.alphas_normal, model.alphas_reduce)
    with torch.no_grad():
        model.alphas_normal.normal_()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert isinstance(loaded, DartsSearchNetwork)
    assert torch.equal(loaded.alphas_normal, model.alphas_normal)
    assert loaded.genotype() == model.genotype()


def test_search_cells_use_affine_free_batchnorm_and_pooling_is_normalised():
    model = tiny_supernet()
    for name, module in model.cells.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert not module.affine, name
    edge = model.cells[0].edges[0]
    assert "none" not in edge.ops
    assert isinstance(edge.ops["max_pool_3x3"][1], torch.nn.BatchNorm2d)


def test_mixed_op_is_the_weighted_sum_and_none_costs_nothing():
    torch.manual_seed(0)
    op = MixedOp(list(PRIMITIVES), channels=4, stride=1).eval()
    x = torch.randn(2, 4, 6, 6)
    weights = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    expected = sum(weights[PRIMITIVES.index(name)] * module(x) for name, module in op.ops.items())
    torch.testing.assert_close(op(x, weights), expected)
    only_none = torch.zeros(len(PRIMITIVES))
    only_none[PRIMITIVES.index("none")] = 1.0
    assert torch.count_nonzero(op(x, only_none)) == 0


def test_derived_config_builds_the_network_found():
    model = tiny_supernet()
    config = model.derived_config(init_channels=8, num_cells=3)
    assert isinstance(config, DartsConfig)
    assert config.get_genotype() == model.genotype()
    assert (config.num_channels, config.image_size, config.num_labels) == (3, 8, 3)
    assert not config.use_auxiliary_head  # the auxiliary head needs 32x32 images
    network = DartsForImageClassification(config)
    assert network(torch.randn(2, 3, 8, 8)).logits.shape == (2, 3)
    paper = DartsSearchNetwork(DartsSearchConfig()).derived_config()
    assert (paper.init_channels, paper.num_cells, paper.use_auxiliary_head) == (36, 20, True)


def test_image_size_too_small_for_the_reductions_fails_early():
    with pytest.raises(ValueError, match=r"3x3 pixels are too small for 8 cells.*at least 4x4"):
        DartsSearchConfig(image_size=3)


def batches(seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)

    def batch():
        return {
            "pixel_values": torch.randn(8, 3, 8, 8, generator=generator, dtype=dtype),
            "labels": torch.randint(0, 3, (8,), generator=generator),
        }

    return batch(), batch()


def supernet_with_optimizers():
    torch.manual_seed(0)
    model = tiny_supernet().double().train()
    with torch.no_grad():
        for alpha in model.arch_parameters():
            alpha.normal_(0, 0.5)
    weight_optimizer = torch.optim.SGD(model.weight_parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), lr=3e-4)
    train, _ = batches(1)
    model(**train).loss.backward()  # one weight step, so the unrolled step has a momentum buffer
    weight_optimizer.step()
    weight_optimizer.zero_grad()
    return model, weight_optimizer, arch_optimizer


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def test_second_order_finite_differences_match_the_exact_unrolled_gradient():
    """Eq. 7-8 of the paper against autograd through the unrolled weight step (double backward).

    ReLU networks are piecewise linear: a perturbation of 0.01 (the paper's) crosses kinks of this tiny network, so
    the maths is checked in float64 with a perturbation small enough to stay on one linear piece."""
    model, weight_optimizer, arch_optimizer = supernet_with_optimizers()
    train, valid = batches()
    first = flat(Architect(model, arch_optimizer, order=1).arch_gradients(train, valid, weight_optimizer))
    finite = flat(
        Architect(model, arch_optimizer, order=2, epsilon_scale=1e-6).arch_gradients(train, valid, weight_optimizer)
    )
    exact = flat(
        Architect(model, arch_optimizer, order=2, hessian="exact").arch_gradients(train, valid, weight_optimizer)
    )
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(finite, exact, dim=0) > 0.99
    torch.testing.assert_close(finite, exact, rtol=1e-5, atol=1e-8)
    assert cosine(first, exact, dim=0) < 0.95  # the second-order term matters
    valid_loss_gradient = torch.autograd.grad(model(**valid).loss, model.arch_parameters())
    torch.testing.assert_close(first, flat(valid_loss_gradient))


@pytest.mark.parametrize("order", [1, 2])
def test_architect_step_moves_only_the_alphas(order):
    model, weight_optimizer, arch_optimizer = supernet_with_optimizers()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    Architect(model, arch_optimizer, order=order).step(*batches(), weight_optimizer)
    for name, tensor in model.state_dict().items():
        changed = not torch.equal(tensor, before[name])
        assert changed == name.startswith("alphas"), name  # weights and BatchNorm statistics untouched


def test_search_on_the_digits_learns_and_writes_the_result_folder(tmp_path):
    supernet = run_search(tiny_search_args(tmp_path, max_train_samples=None, epochs=3))
    history = json.loads((tmp_path / "alphas_history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert history[-1]["valid_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert history[-1]["valid_accuracy"] > history[0]["valid_accuracy"]
    assert len(history[-1]["alphas_normal"]) == 5 and len(history[-1]["alphas_normal"][0]) == len(PRIMITIVES)

    genotype = Genotype.from_json((tmp_path / "genotype.json").read_text())
    assert genotype == supernet.genotype() == Genotype.from_dict(history[-1]["genotype"])
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, DartsConfig) and config.get_genotype() == genotype
    assert (config.num_channels, config.image_size, config.num_labels, config.init_channels) == (3, 8, 10, 8)
    assert config.id2label[3] == "3"
    assert DartsForImageClassification(config)(torch.randn(2, 3, 8, 8)).logits.shape == (2, 10)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path / "supernet"), DartsSearchNetwork)
    card = (tmp_path / "README.md").read_text()
    assert "library_name: darts-hub" in card and json.dumps(genotype.to_dict()) in card
    if shutil.which("dot"):
        for name in ("normal.png", "reduction.png", "search_progress.gif"):
            assert (tmp_path / name).stat().st_size > 1000, name
        from PIL import Image

        assert Image.open(tmp_path / "search_progress.gif").n_frames == 3
    else:  # without graphviz: the graph sources instead, and no animation
        assert (tmp_path / "normal.gv").is_file() and (tmp_path / "reduction.gv").is_file()
        assert not (tmp_path / "search_progress.gif").exists()


def test_resume_mid_epoch_gives_the_uninterrupted_result(tmp_path):
    uninterrupted = run_search(tiny_search_args(tmp_path / "full", order=2))
    # 128 weight-training images at batch 32: 4 steps per epoch; stop in the middle of the second epoch.
    run_search(tiny_search_args(tmp_path / "parts", order=2, max_steps=6, checkpointing_steps=6))
    assert (tmp_path / "parts" / "checkpoints" / "checkpoint-6").is_dir()
    resumed = run_search(tiny_search_args(tmp_path / "parts", order=2, resume_from_checkpoint="latest"))
    for ours, theirs in zip(resumed.arch_parameters(), uninterrupted.arch_parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    torch.testing.assert_close(
        flat(resumed.weight_parameters()), flat(uninterrupted.weight_parameters()), rtol=0, atol=1e-6
    )
    assert resumed.genotype() == uninterrupted.genotype()
    full = json.loads((tmp_path / "full" / "alphas_history.json").read_text())
    parts = json.loads((tmp_path / "parts" / "alphas_history.json").read_text())
    assert [r["valid_accuracy"] for r in parts] == pytest.approx([r["valid_accuracy"] for r in full])
    # Checkpoints rotate: at most two are kept.
    assert len(list((tmp_path / "parts" / "checkpoints").iterdir())) == 2


@pytest.mark.parametrize("order", [1, 2])
def test_two_processes_keep_identical_alphas(tmp_path, order, launch_two_processes):
    settings = dict(
        output_dir=tmp_path,
        max_train_samples=128,
        epochs=1,
        batch_size=16,
        init_channels=4,
        num_cells=3,
        steps=2,
        multiplier=2,
        order=order,
    )
    launch_two_processes(
        TESTS / "ddp_search.py", "cnn", *[item for k, v in settings.items() for item in (f"--{k}", v)]
    )
    ranks = [torch.load(tmp_path / f"alphas-rank{rank}.pt") for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for alpha0, alpha1 in zip(ranks[0]["alphas"], ranks[1]["alphas"]):
        assert torch.equal(alpha0, alpha1)
        assert alpha0.abs().max() > 1e-5  # they moved


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


def test_push_failure_leaves_the_folder_intact(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "config.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(
        HubPushError,
        match=r"(?s)local folder is complete and unchanged.*hf upload someone/cell .* --include .config.json.",
    ):
        push_folder(tmp_path, "someone/cell", ["config.json"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_search_with_push_fails_before_searching_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = tiny_search_args(tmp_path, push_to_hub=True, hub_model_id="someone/cell")
    with pytest.raises(HubPushError, match="Could not create the Hub repository 'someone/cell'"):
        run_search(args)
    assert not (tmp_path / "checkpoints").exists()


def test_search_arguments_are_checked():
    with pytest.raises(ValueError, match="--order must be 1 or 2"):
        SearchArguments(order=3)
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        SearchArguments(push_to_hub=True)
    with pytest.raises(ValueError, match="--train_portion"):
        SearchArguments(train_portion=1.0)


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


def test_a_search_on_streamed_images_finds_what_decoded_images_find(tmp_path):
    in_memory = run_search(tiny_search_args(tmp_path / "memory", epochs=1))
    streamed = run_search(
        tiny_search_args(tmp_path / "streamed", epochs=1, stream_images=True, dataloader_num_workers=1)
    )
    for a, b in zip(in_memory.arch_parameters(), streamed.arch_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("num_cells", [1, 2])
def test_searches_of_one_or_two_cells_run_in_both_orders(tmp_path, num_cells, caplog):
    """With one or two cells every cell is a reduction cell: the normal alphas get no gradient (they stay), and the
    second-order step must not fail on them ("differentiated Tensor not used in the graph")."""
    for order in (1, 2):
        with caplog.at_level(logging.WARNING, logger="darts_hub"):
            supernet = run_search(
                tiny_search_args(tmp_path / f"order{order}", order=order, num_cells=num_cells, epochs=1)
            )
        assert "every cell is a reduction cell" in caplog.text
        assert supernet.config.reduction_cells == tuple(range(num_cells))
        genotype = json.loads((tmp_path / f"order{order}" / "genotype.json").read_text())
        assert len(genotype["normal"]) == len(genotype["reduce"]) == 4  # 2 nodes x 2 edges
