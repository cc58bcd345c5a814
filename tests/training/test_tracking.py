"""`--report_to`: a real search logs to real local TensorBoard, W&B (offline) and Trackio runs, read back from their
files; trackers that are unknown or not installed are refused when the command is parsed."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import needs_dot, tiny_search_args
from PIL import Image

from darts_hub.models.modeling_darts_search import DartsSearchConfig
from darts_hub.plots import alphas_picture
from darts_hub.search.early_stopping import EIGENVALUE_KEY
from darts_hub.training import tracking
from darts_hub.training.arguments import SearchArguments


PICTURES = ("alphas", "learning_curves", "cell/normal", "cell/reduction")


@pytest.fixture(scope="module")
def tracked_search(tmp_path_factory):
    """A two-epoch search (the eigenvalue measured each epoch) reporting to TensorBoard, W&B and Trackio at once, run
    by the installed `darts-search` in a process of its own (Trackio reads TRACKIO_DIR when imported)."""
    root = tmp_path_factory.mktemp("tracked")
    command = [
        shutil.which("darts-search"),
        "--output_dir",
        str(root / "search"),
        "--report_to",
        "tensorboard,wandb,trackio",
        "--hessian_eigenvalue_every",
        "1",
        *("--epochs 2 --max_train_samples 64 --batch_size 32 --init_channels 4 --num_cells 3 --num_nodes 2").split(),
        *("--multiplier 2 --train_init_channels 8 --train_num_cells 3 --seed 0").split(),
    ]
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "TRACKIO_DIR": str(root / "trackio")}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((root / "search" / "alphas_history.json").read_text())
    return root, history


def expected_alphas(root: Path, record: dict) -> np.ndarray:
    """The alpha heatmap of `record` as this process draws it (the trackers must hold the same pixels)."""
    config = DartsSearchConfig.from_pretrained(root / "search" / "supernet")
    columns = {cell: config.column_names(cell) for cell in ("normal", "reduce")}
    return np.asarray(alphas_picture(record, columns))


@needs_dot
def test_tensorboard_holds_the_numbers_and_pictures_of_every_epoch(tracked_search):
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    root, history = tracked_search
    events = EventAccumulator(str(root / "search" / "logs" / "darts-search"), size_guidance={IMAGES: 0}).Reload()
    steps = [record["step"] for record in history]
    for key in ("train_loss", "valid_accuracy", "learning_rate", EIGENVALUE_KEY):
        logged = [(event.step, event.value) for event in events.Scalars(key)]
        assert logged == [(record["step"], pytest.approx(record[key], rel=1e-6)) for record in history], key
    for name in PICTURES:
        assert [image.step for image in events.Images(name)] == steps, name
    last = Image.open(io.BytesIO(events.Images("alphas")[-1].encoded_image_string)).convert("RGB")
    np.testing.assert_array_equal(np.asarray(last), expected_alphas(root, history[-1]))


@needs_dot
def test_an_offline_wandb_run_in_the_logs_folder_holds_every_epochs_pictures(tracked_search):
    root, history = tracked_search
    (run,) = (root / "search" / "logs" / "wandb").glob("offline-run-*")
    assert list(run.glob("*.wandb")), "the run's record file is missing"
    images = run / "files" / "media" / "images"
    for name in PICTURES:
        for record in history:
            assert list(images.glob(f"{name}_{record['step']}_*.png")), (name, record["step"])
    (last,) = images.glob(f"alphas_{history[-1]['step']}_*.png")
    np.testing.assert_array_equal(np.asarray(Image.open(last).convert("RGB")), expected_alphas(root, history[-1]))
    assert not (root / "wandb").exists(), "W&B wrote into the working directory"


@needs_dot
def test_the_local_trackio_project_holds_the_numbers_and_pictures(tracked_search):
    root, history = tracked_search
    script = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
(run,) = SQLiteStorage.get_runs("darts-search")
json.dump(SQLiteStorage.get_logs("darts-search", run), sys.stdout, default=str)
"""
    environment = {**os.environ, "TRACKIO_DIR": str(root / "trackio")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True
    )
    logs = json.loads(result.stdout)
    numbers = [(log["step"], log["train_loss"], log[EIGENVALUE_KEY]) for log in logs if "train_loss" in log]
    assert numbers == [
        (r["step"], pytest.approx(r["train_loss"], rel=1e-6), pytest.approx(r[EIGENVALUE_KEY], rel=1e-6))
        for r in history
    ]
    pictures = [log for log in logs if "alphas" in log]
    assert [log["step"] for log in pictures] == [record["step"] for record in history]
    for log in pictures:
        assert set(PICTURES) <= set(log)
        for name in PICTURES:
            assert log[name]["_type"] == "trackio.image"
            assert (root / "trackio" / "media" / log[name]["file_path"]).is_file()
    last = root / "trackio" / "media" / pictures[-1]["alphas"]["file_path"]
    np.testing.assert_array_equal(np.asarray(Image.open(last).convert("RGB")), expected_alphas(root, history[-1]))


def test_trackers_settings_take_lists_as_text():
    settings = tracking.tracker_settings({"image_mean": [0.5, 0.25], "seed": 2, "name": "x", "size": None})
    assert settings == {"image_mean": "[0.5, 0.25]", "seed": 2, "name": "x", "size": None}


@pytest.mark.parametrize("report_to", ["none", "", "all", "tensorboard", "tensorboard, trackio"])
def test_report_to_is_read_as_accelerates_log_with(report_to):
    expected = {"none": None, "": None, "all": ["all"], "tensorboard": ["tensorboard"]}
    assert tracking.requested_trackers(report_to) == expected.get(report_to, ["tensorboard", "trackio"])


def test_an_unknown_tracker_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown tracker 'tensorbord'.*tensorboard.*trackio.*wandb"):
        SearchArguments(report_to="tensorbord")


def test_a_tracker_that_is_not_installed_is_refused_with_what_to_install(tmp_path, monkeypatch, run_script):
    # Accelerate itself would leave it out without a word. Here none is installed but TensorBoard.
    monkeypatch.setattr(tracking, "get_available_trackers", lambda: ["tensorboard"])
    with pytest.raises(ValueError, match=r"the wandb tracker is not installed.*pip install wandb"):
        tiny_search_args(tmp_path / "search", report_to="tensorboard,wandb")
    with pytest.raises(ValueError, match=r"the comet_ml tracker is not installed.*pip install comet-ml"):
        run_script("search", "--output_dir", tmp_path / "search", "--report_to", "comet_ml")
    assert not (tmp_path / "search").exists()


@needs_dot
def test_the_recurrent_search_logs_its_cell_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator
    from test_search_text import tiny_recurrent_search

    from darts_hub.training.search_text import run_recurrent_search

    run_recurrent_search(tiny_recurrent_search(tmp_path / "search", epochs=1, report_to="tensorboard"))
    events = EventAccumulator(str(tmp_path / "search" / "logs" / "darts-rnn-search"), size_guidance={IMAGES: 0})
    events.Reload()
    assert {"alphas", "learning_curves", "cell/recurrent"} <= set(events.Tags()["images"])
    assert [event.step for event in events.Scalars("valid_perplexity")] == [events.Images("alphas")[0].step]


def test_an_epoch_without_a_cell_gets_no_cell_pictures():
    # FairDARTS before any operation passes its threshold: the record has no genotype.
    weights = [[0.5] * 7 for _ in range(5)]
    record = dict(epoch=1, step=4, train_loss=2.3, train_accuracy=0.1, valid_loss=2.3, valid_accuracy=0.1)
    record.update(genotype=None, alphas_normal=weights, alphas_reduce=weights)
    columns = {cell: [f"op {i}" for i in range(7)] for cell in ("normal", "reduce")}
    assert set(tracking.search_pictures([record], columns)) == {"alphas", "learning_curves"}


def test_pictures_that_fail_to_reach_a_tracker_do_not_stop_the_search(tmp_path, monkeypatch, caplog):
    from darts_hub.training import loop
    from darts_hub.training.search_images import run_search

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(loop, "log_pictures", broken)
    run_search(tiny_search_args(tmp_path / "search", epochs=1, max_train_samples=64, report_to="tensorboard"))
    assert (tmp_path / "search" / "genotype.json").is_file()
    assert "The pictures of epoch 1 did not reach the trackers: OSError('disk full')" in caplog.text
