"""The bad-input catalogue: each wrong value, file, dataset, config, genotype, checkpoint, Hub id or folder is refused
with a message that names what was wrong and how to fix it, and everything written before stays byte for byte the
same (the whole workspace, a finished run included, is hashed before and after each case)."""

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from helpers import RunsCode, folder_hash, language_model_arguments, tiny_search_args, training_arguments
from PIL import Image

from darts_hub.convert import convert_checkpoint
from darts_hub.data.images import DataError, class_names_of, decode_images, find_columns, load_image_dataset
from darts_hub.data.text import load_text_dataset, split_lines
from darts_hub.hub import HubPushError
from darts_hub.models import DartsConfig, DartsForImageClassification, DartsRNNConfig
from darts_hub.models.genotypes import load_genotype
from darts_hub.training.arguments import (
    EvaluateArguments,
    RecurrentSearchArguments,
    SearchArguments,
)
from darts_hub.training.checkpoints import ResumeError
from darts_hub.training.evaluate_checkpoint import evaluate_checkpoint
from darts_hub.training.search_images import run_search
from darts_hub.training.train_images import run_training
from darts_hub.unpickling import UnsafePickleError


def image_folder(root: Path, classes: dict[str, int], size=(10, 10)) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(np.full((*size, 3), index * 40, np.uint8)).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A finished search, a trained model, image folders and texts, some of them broken on purpose."""
    root = tmp_path_factory.mktemp("workspace")
    run_search(tiny_search_args(root / "search", epochs=1, max_train_samples=64))
    model = DartsForImageClassification(DartsConfig(init_channels=4, num_cells=3, image_size=8, num_labels=10))
    model.save_pretrained(root / "model")
    shutil.copytree(root / "model", root / "corrupt-model")
    weights = root / "corrupt-model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    image_folder(root / "one-class", {"cat": 4})
    image_folder(root / "corrupt-images", {"cat": 3, "dog": 3})
    (root / "corrupt-images" / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    image_folder(root / "mixed-sizes", {"cat": 2})
    image_folder(root / "mixed-sizes", {"dog": 2}, size=(12, 12))
    # A checkpoint that runs code when unpickled: it would leave a file in the workspace.
    torch.save({"state": RunsCode(os.system, f"touch {root / 'code-ran'}")}, root / "crafted.pt")
    (root / "texts").mkdir()
    for split, text in (("train", "a b c\nd e\n"), ("validation", "\n\n"), ("test", "a c\n")):
        (root / "texts" / f"{split}.txt").write_text(text)
    (root / "no-genotype").mkdir()
    config = DartsConfig(init_channels=4, num_cells=3).to_dict()
    del config["genotype"]
    (root / "no-genotype" / "config.json").write_text(json.dumps(config))
    DartsRNNConfig(vocab_size=10, hidden_size=8).save_pretrained(root / "rnn-config")
    genotypes = {
        "unknown-op": [["sep_conv_9x9", 0], ["sep_conv_3x3", 1]],
        "bad-input": [["sep_conv_3x3", 7], ["sep_conv_3x3", 1]],
    }
    for name, edges in genotypes.items():
        cell = {"normal": edges * 4, "normal_concat": [2, 3, 4, 5], "reduce": edges * 4, "reduce_concat": [2, 3, 4, 5]}
        (root / f"{name}.json").write_text(json.dumps(cell))
    (root / "broken.json").write_text("{not json")
    np.savez(root / "no-labels.npz", x=np.zeros((2, 4, 4, 3), np.uint8))
    np.savez(root / "float-images.npz", x=np.zeros((2, 4, 4, 3)), y=np.zeros(2, np.int64))
    (root / "a-file").write_text("not a folder")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("mine")
    return SimpleNamespace(root=root, search=root / "search")


def search(workspace, **kwargs):
    return run_search(tiny_search_args(workspace.root / "new-run", epochs=1, max_train_samples=64, **kwargs))


def train(workspace, **kwargs):
    settings = dict(output_dir=str(workspace.root / "new-run"), epochs=1, max_train_samples=64, batch_size=32)
    return run_training(training_arguments(**{"genotype": "DARTS_V2", **settings, **kwargs}))


def float_labels():
    table = datasets.Dataset.from_dict({"image": [Image.new("RGB", (4, 4))] * 3, "label": [0.5, 1.0, 2.5]})
    return class_names_of(table.cast_column("image", datasets.Image()), "label")


def corpus_without_validation(workspace):
    return split_lines(load_text_dataset(train_file=str(workspace.root / "texts" / "train.txt")))


CASES = {
    # Command-line values
    "epochs 0": (lambda ws: SearchArguments(epochs=0), ValueError, r"--epochs must be positive, got 0"),
    "epochs -1": (
        lambda ws: training_arguments(genotype="DARTS_V2", epochs=-1),
        ValueError,
        r"--epochs must be positive",
    ),
    "batch size 0": (lambda ws: SearchArguments(batch_size=0), ValueError, r"--batch_size must be positive, got 0"),
    "image size 0": (lambda ws: SearchArguments(image_size=0), ValueError, r"--image_size must be positive"),
    "init channels 0": (lambda ws: SearchArguments(init_channels=0), ValueError, r"--init_channels must be positive"),
    "num cells -2": (lambda ws: SearchArguments(num_cells=-2), ValueError, r"--num_cells must be positive"),
    "max steps 0": (lambda ws: SearchArguments(max_steps=0), ValueError, r"--max_steps must be positive"),
    "checkpoint limit 0": (
        lambda ws: SearchArguments(checkpoints_total_limit=0),
        ValueError,
        r"--checkpoints_total_limit must be positive",
    ),
    "learning rate 0": (
        lambda ws: SearchArguments(learning_rate=0.0),
        ValueError,
        r"--learning_rate must be positive",
    ),
    "order 3": (lambda ws: SearchArguments(order=3), ValueError, r"--order must be 1 or 2, got 3"),
    "hessian": (lambda ws: SearchArguments(hessian="bfgs"), ValueError, r"--hessian must be one of"),
    "train portion": (lambda ws: SearchArguments(train_portion=1.5), ValueError, r"--train_portion must be between"),
    "push without id": (
        lambda ws: SearchArguments(push_to_hub=True),
        ValueError,
        r"--push_to_hub needs --hub_model_id \(user/name\)",
    ),
    "fp16 on the CPU": (
        lambda ws: SearchArguments(mixed_precision="fp16"),
        ValueError,
        r"fp16 needs a GPU; on the CPU use bf16 or no",
    ),
    "lr schedule": (
        lambda ws: training_arguments(genotype="DARTS_V2", lr_schedule="linear"),
        ValueError,
        r"--lr_schedule must be cosine or exponential",
    ),
    "two networks": (
        lambda ws: training_arguments(genotype="DARTS_V2", config_name="x"),
        ValueError,
        r"exactly one of --genotype, --config_name",
    ),
    "recipe": (
        lambda ws: training_arguments(genotype="DARTS_V2", recipe="mnist"),
        ValueError,
        r"--recipe must be one of",
    ),
    "bptt 0": (lambda ws: RecurrentSearchArguments(bptt=0), ValueError, r"--bptt must be positive"),
    "accumulation": (
        lambda ws: language_model_arguments(genotype="DARTS_V2", batch_size=10, gradient_accumulation_steps=3),
        ValueError,
        r"--batch_size 10 must split into --gradient_accumulation_steps 3",
    ),
    "evaluate without a model": (lambda ws: EvaluateArguments(), ValueError, r"--model_name_or_path is required"),
    "evaluate batch 0": (
        lambda ws: EvaluateArguments(model_name_or_path="x", batch_size=0),
        ValueError,
        r"--batch_size must be positive",
    ),
    # Image datasets
    "float labels": (
        lambda ws: float_labels(),
        DataError,
        r"Column 'label' holds .*float.*not class labels.*ClassLabel",
    ),
    "one class": (
        lambda ws: search(ws, train_dir=str(ws.root / "one-class")),
        DataError,
        r"1 class\(es\) \['cat'\]: classification needs at least two .*one sub-folder per class",
    ),
    "corrupt image": (
        lambda ws: search(ws, train_dir=str(ws.root / "corrupt-images")),
        DataError,
        r"Could not decode image \d+ \(.*dog/1.png\)",
    ),
    "mixed sizes": (
        lambda ws: search(ws, train_dir=str(ws.root / "mixed-sizes")),
        DataError,
        r"is 12x12 but the first is 10x10: pass --image_size",
    ),
    "missing label column": (
        lambda ws: find_columns(load_image_dataset()["train"], label_column_name="klass"),
        DataError,
        r"no column 'klass' \(--label_column_name\); its columns are",
    ),
    "name and folder": (
        lambda ws: load_image_dataset("uoft-cs/cifar10", train_dir=str(ws.root)),
        DataError,
        r"one of --dataset_name, --train_dir and --train_arrays, not several",
    ),
    "arrays without labels": (
        lambda ws: load_image_dataset(train_arrays=str(ws.root / "no-labels.npz")),
        DataError,
        r"no-labels.npz has the arrays \['x'\] but needs x .* and y .*missing \['y'\]",
    ),
    "float arrays": (
        lambda ws: load_image_dataset(train_arrays=str(ws.root / "float-images.npz")),
        DataError,
        r"x must be uint8 images",
    ),
    "offline dataset": (
        lambda ws: search(ws, dataset_name="uoft-cs/cifar10"),
        DataError,
        r"Could not load the dataset 'uoft-cs/cifar10'.*offline.*--train_dir",
    ),
    "label out of range": (
        lambda ws: decode_images(
            datasets.Dataset.from_dict({"image": [Image.new("RGB", (4, 4))] * 2, "label": [0, 7]}).cast_column(
                "image", datasets.Image()
            ),
            "image",
            "label",
            class_names=["a", "b"],
        ),
        DataError,
        r"range over 0..7, outside the 2 classes 0..1",
    ),
    # Text datasets
    "missing text split": (
        corpus_without_validation,
        DataError,
        r"With --train_file, also pass the validation and test file",
    ),
    "empty split": (
        lambda ws: split_lines(
            load_text_dataset(
                **{f"{s}_file": str(ws.root / "texts" / f"{s}.txt") for s in ("train", "validation", "test")}
            )
        ),
        DataError,
        r"The validation split\(s\) hold no words",
    ),
    "text column": (
        lambda ws: split_lines(
            datasets.DatasetDict(
                {s: datasets.Dataset.from_dict({"a": ["x"], "b": ["y"]}) for s in ("train", "validation", "test")}
            )
        ),
        DataError,
        r"Could not find the text column among \['a', 'b'\]: name it with --text_column_name",
    ),
    # Configs
    "config without genotype": (
        lambda ws: train(ws, genotype=None, config_name=str(ws.root / "no-genotype")),
        ValueError,
        r"names no genotype.*add a \"genotype\".*or pass --genotype",
    ),
    "config of another model": (
        lambda ws: train(ws, genotype=None, config_name=str(ws.root / "rnn-config")),
        ValueError,
        r"is a DartsRNNConfig, not a DartsConfig or NasBench201Config",
    ),
    "imagenet stem on 8x8": (
        lambda ws: DartsConfig(stem="imagenet", image_size=8),
        ValueError,
        r"ImageNet stem needs images of at least 32x32.*use the CIFAR stem",
    ),
    "odd channels": (lambda ws: DartsConfig(init_channels=3), ValueError, r"init_channels must be even, got 3"),
    "unknown stem": (lambda ws: DartsConfig(stem="vgg"), ValueError, r"stem must be one of \['cifar', 'imagenet'\]"),
    # Genotype JSON
    "unknown operation": (
        lambda ws: load_genotype(str(ws.root / "unknown-op.json")),
        ValueError,
        r"normal\[0\] = \('sep_conv_9x9', 0\) \(node 0\) uses the unknown operation 'sep_conv_9x9'; known operations",
    ),
    "bad edge input": (
        lambda ws: load_genotype(str(ws.root / "bad-input.json")),
        ValueError,
        r"takes input 7, but node 0 can only take inputs 0..1",
    ),
    "broken JSON": (
        lambda ws: load_genotype(str(ws.root / "broken.json")),
        ValueError,
        r"broken.json is not valid JSON",
    ),
    "unknown zoo name": (
        lambda ws: train(ws, genotype="DARTS_V9"),
        FileNotFoundError,
        r"'DARTS_V9' is neither a zoo genotype \(DARTS_V1, DARTS_V2",
    ),
    # Checkpoints and saved models
    "changed batch size on resume": (
        lambda ws: run_search(
            tiny_search_args(ws.search, epochs=1, max_train_samples=64, batch_size=16, resume_from_checkpoint="latest")
        ),
        ResumeError,
        r"--batch_size: 32 in the checkpoint, 16 now.*--accept_inexact_resume",
    ),
    "missing checkpoint folder": (
        lambda ws: search(ws, resume_from_checkpoint=str(ws.root / "nowhere")),
        FileNotFoundError,
        r"No checkpoint folder at .*nowhere",
    ),
    "corrupt weights": (
        lambda ws: evaluate_checkpoint(EvaluateArguments(model_name_or_path=str(ws.root / "corrupt-model"))),
        OSError,
        r"Could not read the weights .*corrupt-model/model.safetensors.*truncated or corrupt",
    ),
    "not a torch file": (
        lambda ws: convert_checkpoint(ws.root / "broken.json", "cifar10", ws.root / "converted"),
        ValueError,
        r"broken.json is not a plain state dict.*not a readable torch checkpoint",
    ),
    "crafted checkpoint is refused": (
        lambda ws: convert_checkpoint(ws.root / "crafted.pt", "ptb", ws.root / "converted"),
        UnsafePickleError,
        r"crafted.pt: refusing to load the global posix.system \(in crafted/data.pkl\). Nothing was run",
    ),
    # Hub ids and folders
    "output is a file": (
        lambda ws: run_search(SearchArguments(output_dir=str(ws.root / "a-file"))),
        NotADirectoryError,
        r"--output_dir .*a-file exists and is not a folder",
    ),
    "output holds another run": (
        lambda ws: run_search(tiny_search_args(ws.search)),
        FileExistsError,
        r"holds a darts-search run.*new --output_dir.*--resume_from_checkpoint latest.*--overwrite_output_dir",
    ),
    "output holds the user's files": (
        lambda ws: run_search(tiny_search_args(ws.root / "notes")),
        FileExistsError,
        r"files that no darts-hub run recorded",
    ),
    "converter into a non-empty folder": (
        lambda ws: convert_checkpoint(ws.root / "broken.json", "cifar10", ws.root / "notes"),
        FileExistsError,
        r"notes already exists and is not empty: choose a new --output_dir, or pass --overwrite_output_dir",
    ),
    "unreachable Hub": (
        lambda ws: search(ws, push_to_hub=True, hub_model_id="someone/cell"),
        HubPushError,
        r"Could not create the Hub repository 'someone/cell'.*nothing has been run yet",
    ),
    "evaluate split": (
        lambda ws: evaluate_checkpoint(EvaluateArguments(model_name_or_path=str(ws.root / "model"), split="dev")),
        KeyError,
        r"no split \['dev'\]; its splits are",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_clearly_and_changes_nothing(case, workspace, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make, error, message = CASES[case]
    before = folder_hash(workspace.root)
    with pytest.raises(error, match=f"(?s){message}"):
        make(workspace)
    assert folder_hash(workspace.root) == before
