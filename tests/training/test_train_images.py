"""Training a DARTS network from scratch (scripts/train.py): learning, drop-path schedule, the saved folder in
transformers and the pipeline, evaluate.py, resume, fine-tuning, recipes."""

import json

import numpy as np
import pytest
import torch
from helpers import training_arguments
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from darts_hub import DartsForImageClassification
from darts_hub.data.images import ImageTensors
from darts_hub.models.genotypes import DARTS_V1, get_genotype
from darts_hub.models.modeling_darts_search import DartsSearchConfig, DartsSearchModel
from darts_hub.models.ops import DropPath
from darts_hub.recipes import IMAGE_TRAINING
from darts_hub.search.derived import derived_config
from darts_hub.training.inputs import normalisation
from darts_hub.training.loop import epoch_scheduler
from darts_hub.training.train_images import run_training


def tiny_train_args(output_dir, **kwargs):
    settings = dict(
        output_dir=str(output_dir),
        genotype="DARTS_V2",
        epochs=6,
        init_channels=8,
        num_cells=3,
        batch_size=64,
        seed=0,
    )
    return training_arguments(**{**settings, **kwargs})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small DARTS_V2 network trained for a few epochs on the embedded digits (shared by several tests)."""
    output_dir = tmp_path_factory.mktemp("trained")
    model = run_training(tiny_train_args(output_dir))
    return output_dir, model


def test_training_on_the_digits_is_far_above_chance(trained):
    output_dir, _ = trained
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["eval_split"] == "test" and results["eval_samples"] == 360
    assert results["eval_accuracy"] > 0.8  # ten classes: chance is 0.1
    log = json.loads((output_dir / "training_log.json").read_text())
    assert [record["epoch"] for record in log] == [1, 2, 3, 4, 5, 6]
    assert log[-1]["test_accuracy"] == results["eval_accuracy"]
    assert all(record["augmentation_seconds"] > 0 and record["model_seconds"] > 0 for record in log)


def test_drop_path_follows_the_linear_schedule(trained):
    output_dir, model = trained
    log = json.loads((output_dir / "training_log.json").read_text())
    assert [record["drop_path_prob"] for record in log] == pytest.approx([0.2 * e / 6 for e in range(6)])
    probabilities = {m.drop_prob for m in model.modules() if isinstance(m, DropPath)}
    assert len(probabilities) == 1 and probabilities.pop() == pytest.approx(0.2 * 5 / 6)
    assert model.config.drop_path_prob == 0.2


def test_trained_folder_loads_in_transformers_and_the_pipeline(trained):
    output_dir, model = trained
    loaded = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    pixels = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(loaded(pixels).logits, model.eval()(pixels).logits)
    classifier = pipeline("image-classification", model=str(output_dir))
    digit = Image.fromarray((np.eye(8) * 255).astype(np.uint8), mode="L")
    predictions = classifier(digit, top_k=3)
    assert len(predictions) == 3 and all(p["label"] in [str(d) for d in range(10)] for p in predictions)


def test_evaluate_script_reproduces_the_training_accuracy(trained, run_script, tmp_path, monkeypatch):
    from darts_hub.data.images import decode_images
    from darts_hub.training import inputs

    output_dir, _ = trained
    decoded = []  # only the evaluated split's images are decoded, not the training split's

    def recording_decode(dataset, *args, **kwargs):
        decoded.append(len(dataset))
        return decode_images(dataset, *args, **kwargs)

    monkeypatch.setattr(inputs, "decode_images", recording_decode)
    printed = json.loads(
        run_script("evaluate", "--model_name_or_path", output_dir, "--output_file", tmp_path / "eval.json")
    )
    assert decoded == [360] and printed["preprocessing"] == "resize to 8x8"
    results = json.loads((output_dir / "all_results.json").read_text())
    assert printed == json.loads((tmp_path / "eval.json").read_text())
    assert printed["num_images"] == 360
    assert printed["top1_accuracy"] == pytest.approx(results["eval_accuracy"], abs=1e-6)
    assert printed["top1_error"] == pytest.approx(1 - results["eval_accuracy"], abs=1e-6)
    assert printed["parameters"] == results["parameters"] and printed["mult_adds"] == results["mult_adds"]


def test_model_card_holds_the_measured_metrics(trained):
    output_dir, _ = trained
    card = ModelCard.load(output_dir / "README.md")
    results = json.loads((output_dir / "all_results.json").read_text())
    assert card.data.library_name == "darts-hub"
    metrics = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert metrics["Top-1 accuracy"] == pytest.approx(results["eval_accuracy"], abs=1e-4)
    assert card.data.eval_results[0].dataset_split == "test"
    assert (output_dir / "normal.png").exists() or (output_dir / "normal.gv").exists()


def test_resume_mid_training_gives_the_same_weights(tmp_path):
    settings = dict(epochs=2, max_train_samples=320)  # 5 steps per epoch
    full = run_training(tiny_train_args(tmp_path / "full", **settings))
    run_training(tiny_train_args(tmp_path / "parts", max_steps=7, checkpointing_steps=7, **settings))
    resumed = run_training(tiny_train_args(tmp_path / "parts", resume_from_checkpoint="latest", **settings))
    full_state, resumed_state = full.state_dict(), resumed.state_dict()
    for name, tensor in full_state.items():
        torch.testing.assert_close(resumed_state[name], tensor, rtol=0, atol=1e-6, msg=name)
    full_log = json.loads((tmp_path / "full" / "training_log.json").read_text())
    parts_log = json.loads((tmp_path / "parts" / "training_log.json").read_text())
    assert [r["test_accuracy"] for r in parts_log] == pytest.approx([r["test_accuracy"] for r in full_log])


def test_training_a_search_result_keeps_its_cells(tmp_path):
    search = DartsSearchModel(DartsSearchConfig(init_channels=4, num_cells=3, image_size=8))
    derived_config(search, init_channels=8, num_cells=3).save_pretrained(tmp_path / "search")
    model = run_training(
        tiny_train_args(tmp_path / "out", genotype=None, config_name=str(tmp_path / "search"), epochs=1)
    )
    assert model.config.get_genotype() == search.genotype()
    assert (model.config.init_channels, model.config.num_cells) == (8, 3)  # the config's sizes, not the recipe's


def test_fine_tuning_needs_matching_classes_or_ignore_mismatched_sizes(tmp_path):
    checkpoint = tmp_path / "five-classes"
    config = run_training(tiny_train_args(tmp_path / "ten", epochs=1, max_train_samples=128)).config
    config.num_labels = 5
    config.id2label = {i: str(i) for i in range(5)}
    config.label2id = {str(i): i for i in range(5)}
    DartsForImageClassification(config).save_pretrained(checkpoint)
    with pytest.raises(ValueError, match="classifies 5 classes but the data has 10.*--ignore_mismatched_sizes"):
        run_training(tiny_train_args(tmp_path / "ft", genotype=None, model_name_or_path=str(checkpoint), epochs=1))
    model = run_training(
        tiny_train_args(
            tmp_path / "ft", genotype=None, model_name_or_path=str(checkpoint), ignore_mismatched_sizes=True, epochs=1
        )
    )
    assert model.config.num_labels == 10


def test_missing_genotype_or_config_is_a_clear_error_and_damages_nothing(tmp_path):
    output_dir = tmp_path / "existing"
    output_dir.mkdir()
    (output_dir / "config.json").write_text('{"keep": true}')
    with pytest.raises(FileNotFoundError, match="neither a zoo genotype"):
        run_training(tiny_train_args(output_dir, genotype="DARTS_V9", overwrite_output_dir=True))
    with pytest.raises(FileNotFoundError, match="Could not load the config of --config_name"):
        run_training(
            tiny_train_args(
                output_dir, genotype=None, config_name=str(tmp_path / "nowhere"), overwrite_output_dir=True
            )
        )
    assert [path.name for path in output_dir.iterdir()] == ["config.json"]
    assert (output_dir / "config.json").read_text() == '{"keep": true}'


def test_unwritable_output_dir_is_refused(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises((PermissionError, NotADirectoryError), match="--output_dir"):
        run_training(tiny_train_args(tmp_path / "a-file"))
    with pytest.raises(PermissionError, match="Cannot write to --output_dir"):
        run_training(tiny_train_args(tmp_path / "a-file" / "below"))
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_recipes_set_the_paper_hyperparameters_and_flags_override_them():
    cifar = training_arguments(genotype="DARTS_V2")
    assert (cifar.epochs, cifar.batch_size, cifar.learning_rate, cifar.cutout, cifar.drop_path_prob) == (
        600,
        96,
        0.025,
        16,
        0.2,
    )
    imagenet = training_arguments(genotype="DARTS_V2", recipe="imagenet", learning_rate=0.05)
    assert (imagenet.epochs, imagenet.batch_size, imagenet.label_smoothing, imagenet.lr_gamma) == (250, 128, 0.1, 0.97)
    assert (imagenet.init_channels, imagenet.num_cells, imagenet.stem) == (48, 14, "imagenet")
    assert imagenet.learning_rate == 0.05
    assert set(IMAGE_TRAINING["cifar"]) == set(IMAGE_TRAINING["imagenet"])
    with pytest.raises(ValueError, match="exactly one of --genotype, --config_name, --model_name_or_path"):
        training_arguments()
    with pytest.raises(ValueError, match="--recipe must be one of"):
        training_arguments(genotype="DARTS_V2", recipe="mnist")


def test_genotype_from_a_json_file(tmp_path):
    (tmp_path / "cell.json").write_text(DARTS_V1.to_json())
    model = run_training(
        tiny_train_args(tmp_path / "out", genotype=str(tmp_path / "cell.json"), epochs=1, max_train_samples=128)
    )
    assert model.config.get_genotype() == get_genotype("DARTS_V1")


def test_evaluate_works_for_the_imagenet_stem(tmp_path, run_script):
    model = run_training(
        tiny_train_args(
            tmp_path / "imagenet-stem",
            recipe="imagenet",
            image_size=32,
            init_channels=8,
            num_cells=3,
            epochs=1,
            max_train_samples=128,
            batch_size=32,
        )
    )
    assert model.config.stem == "imagenet" and model.config.image_size == 32
    printed = json.loads(run_script("evaluate", "--model_name_or_path", tmp_path / "imagenet-stem"))
    results = json.loads((tmp_path / "imagenet-stem" / "all_results.json").read_text())
    # Both evaluate as the original ImageNet evaluation (and the saved image processor): resize, then centre crop.
    assert printed["preprocessing"] == "resize the shorter side to 36, centre crop 32"
    assert printed["top1_accuracy"] == pytest.approx(results["eval_accuracy"], abs=1e-6)
    assert (tmp_path / "imagenet-stem" / "eval_results_test.json").is_file()


def test_streamed_images_train_exactly_as_decoded_ones(tmp_path):
    """--stream_images decodes while reading (here in two worker processes): the same batches, the same network."""
    settings = dict(epochs=2, max_train_samples=256, auxiliary_weight=0.0, drop_path_prob=0.0)
    in_memory = run_training(tiny_train_args(tmp_path / "memory", **settings))
    streamed = run_training(
        tiny_train_args(tmp_path / "streamed", stream_images=True, dataloader_num_workers=2, **settings)
    )
    for (name, a), b in zip(in_memory.state_dict().items(), streamed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def learning_rates(scheduler, epochs: int, before_each_epoch: bool) -> list[float]:
    rates = []
    for _ in range(epochs):
        if before_each_epoch:
            scheduler.step()
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        if not before_each_epoch:
            scheduler.step()
    return rates


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
@pytest.mark.parametrize(
    "schedule, original",
    [
        ("cosine", lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10)),
        ("cosine", lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10, eta_min=0.001)),
        ("exponential", lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.97)),
    ],
)
def test_learning_rate_schedules_are_the_originals_stepped_before_each_epoch(schedule, original):
    """The original steps its scheduler before each epoch (train_search.py, train.py, train_imagenet.py): the first
    epoch already trains below the initial rate, the last (cosine) at the minimum."""

    def optimizer():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.025)

    reference = original(optimizer())
    minimum = getattr(reference, "eta_min", 0.0)
    ours = learning_rates(epoch_scheduler(optimizer(), schedule, 10, minimum=minimum, gamma=0.97), 10, False)
    theirs = learning_rates(reference, 10, before_each_epoch=True)
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert ours[0] < 0.025
    if schedule == "cosine":
        assert ours[-1] == pytest.approx(minimum, abs=1e-15)


def test_normalisation_is_the_images_own_or_the_given_constants():
    data = ImageTensors(torch.tensor([[[[0, 255]]] * 3]).to(torch.uint8), torch.tensor([0]), ["a"])
    assert normalisation(data, None, None) == ([0.5] * 3, [pytest.approx(0.7071, abs=1e-4)] * 3)
    cifar = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
    assert normalisation(data, *cifar) == cifar
    for mean, std in ((cifar[0], None), (cifar[0][:2], cifar[1])):
        with pytest.raises(ValueError, match="one value per channel \\(3 for these images\\)"):
            normalisation(data, mean, std)
    with pytest.raises(ValueError, match="--image_std must be positive"):
        normalisation(data, cifar[0], [0.2, 0.0, 0.2])


def test_logging_steps_records_the_loss_of_every_n_steps(tmp_path):
    run_training(tiny_train_args(tmp_path, epochs=2, max_train_samples=256, logging_steps=2))  # 4 steps of 64
    steps = json.loads((tmp_path / "training_steps.json").read_text())
    history = json.loads((tmp_path / "training_log.json").read_text())
    assert [(row["step"], row["epoch"]) for row in steps] == [(2, 1), (4, 1), (6, 2), (8, 2)]
    for epoch, record in enumerate(history, start=1):  # two intervals of 128 images make the epoch's mean
        halves = [row["train_loss"] for row in steps if row["epoch"] == epoch]
        assert sum(halves) / 2 == pytest.approx(record["train_loss"], rel=1e-6)
    assert "training_steps.json" in json.loads((tmp_path / "run_record.json").read_text())["files"]


def test_export_onnx_writes_a_checked_model_onnx_that_the_card_lists(tmp_path, monkeypatch):
    import importlib.util

    import onnxruntime

    from darts_hub.export import ONNX_TOLERANCE

    run_training(tiny_train_args(tmp_path / "out", epochs=1, export="onnx"))
    folder = tmp_path / "out"
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    size = model.config.image_size
    images = torch.randn(3, model.config.num_channels, size, size)
    with torch.no_grad():
        expected = model(images).logits
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    exported = torch.from_numpy(session.run(["logits"], {"pixel_values": images.numpy()})[0])
    torch.testing.assert_close(exported, expected, rtol=0, atol=ONNX_TOLERANCE)
    assert "- `model.onnx`" in (folder / "README.md").read_text()
    # Refused when the command is parsed, before any training: an unknown format, a missing package.
    with pytest.raises(ValueError, match=r"--export must be one of \['onnx'\], got 'tflite'"):
        tiny_train_args(tmp_path / "other", export="tflite")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnx" else real_find_spec(name))
    with pytest.raises(ImportError, match="needs onnx: pip install 'darts-hub\\[onnx\\]'"):
        tiny_train_args(tmp_path / "other", export="onnx")
