"""A run owns its output folder and resumes honestly: never clobbers another run, rotates only its own checkpoints,
skips partial ones, refuses changed settings, missing random states and crafted pickles; publishes only its files."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import TESTS, RunsCode, flat, folder_hash, tiny_search_args

from darts_hub.training.checkpoints import CHECKPOINT_RECORD, ResumeError, latest_checkpoint
from darts_hub.training.search_images import run_search


@pytest.fixture(scope="module")
def stopped_search(tmp_path_factory):
    """A search stopped after 6 steps (checkpoints at steps 4 and 6), and the same search run to its end."""
    root = tmp_path_factory.mktemp("searches")
    full = run_search(tiny_search_args(root / "full", order=1))
    run_search(tiny_search_args(root / "parts", order=1, max_steps=6, checkpointing_steps=6))
    return root, full


def resumed_copy(stopped_search, tmp_path, name="copy") -> Path:
    root, _ = stopped_search
    copy = tmp_path / name
    shutil.copytree(root / "parts", copy)
    return copy


def test_a_run_into_another_runs_folder_is_refused_and_changes_nothing(stopped_search, tmp_path):
    folder = resumed_copy(stopped_search, tmp_path)
    record = json.loads((folder / "run_record.json").read_text())
    assert record["status"] == "complete" and record["task"] == "darts-search" and record["train_runtime_seconds"] > 0
    assert "checkpoints" not in " ".join(record["files"]) and all(
        (folder / name).is_file() for name in record["files"]
    )
    before = folder_hash(folder)
    with pytest.raises(FileExistsError, match=r"holds a darts-search run.*new --output_dir.*--overwrite_output_dir"):
        run_search(tiny_search_args(folder))
    # A folder of someone else's files too.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="files that no darts-hub run recorded"):
        run_search(tiny_search_args(tmp_path / "notes"))
    assert folder_hash(folder) == before and (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_resume_refuses_changed_settings_listing_each_difference(stopped_search, tmp_path):
    folder = resumed_copy(stopped_search, tmp_path)
    before = folder_hash(folder)
    with pytest.raises(ResumeError, match=r"(?s)--batch_size: 32 in the checkpoint, 16 now.*--learning_rate: 0.025"):
        run_search(tiny_search_args(folder, resume_from_checkpoint="latest", batch_size=16, learning_rate=0.1))
    assert {k: v for k, v in folder_hash(folder).items() if k != "run_record.json"} == {
        k: v for k, v in before.items() if k != "run_record.json"
    }


def test_missing_random_states_are_refused_unless_an_inexact_resume_is_accepted(stopped_search, tmp_path):
    folder = resumed_copy(stopped_search, tmp_path)
    (folder / "checkpoints" / "checkpoint-6" / "random_states_0.pkl").unlink()
    with pytest.raises(
        ResumeError, match=r"(?s)random states missing \(random_states_0.pkl\).*--accept_inexact_resume"
    ):
        run_search(tiny_search_args(folder, resume_from_checkpoint="latest"))
    resumed = run_search(tiny_search_args(folder, resume_from_checkpoint="latest", accept_inexact_resume=True))
    assert json.loads((folder / "alphas_history.json").read_text())[-1]["epoch"] == 2
    assert resumed.genotype() is not None


def test_a_partial_checkpoint_is_skipped_and_the_resume_equals_the_uninterrupted_run(stopped_search, tmp_path, caplog):
    """What a kill during the save of checkpoint-6 leaves: a `.partial` folder without its record. Resuming takes
    checkpoint-4 (with a warning naming the partial one) and gives the uninterrupted result."""
    _, full = stopped_search
    folder = resumed_copy(stopped_search, tmp_path)
    checkpoints = folder / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    (checkpoints / "checkpoint-6" / CHECKPOINT_RECORD).unlink()
    (checkpoints / "checkpoint-6").rename(checkpoints / "checkpoint-6.partial")
    with caplog.at_level(logging.WARNING, logger="darts_hub"):
        resumed = run_search(tiny_search_args(folder, resume_from_checkpoint="latest"))
    assert "checkpoint-6.partial: its save did not complete" in caplog.text
    torch.testing.assert_close(flat(resumed.weight_parameters()), flat(full.weight_parameters()), rtol=0, atol=1e-6)
    for ours, theirs in zip(resumed.arch_parameters(), full.arch_parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)


def test_latest_is_this_runs_newest_complete_checkpoint(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"
    for name, run_id in (("checkpoint-5", "ours"), ("checkpoint-9", "another"), ("checkpoint-10", None)):
        (checkpoints / name).mkdir(parents=True)
        if run_id:
            (checkpoints / name / CHECKPOINT_RECORD).write_text(json.dumps({"run_id": run_id}))
    (checkpoints / "checkpoint-12.partial").mkdir()
    with caplog.at_level(logging.WARNING, logger="darts_hub"):
        assert latest_checkpoint(tmp_path, "ours") == checkpoints / "checkpoint-5"
    assert (
        "checkpoint-12.partial" in caplog.text and "checkpoint-10: it has no readable checkpoint.json" in caplog.text
    )
    assert latest_checkpoint(tmp_path, "another") == checkpoints / "checkpoint-9"


def test_overwrite_keeps_other_runs_checkpoints_out_of_rotation(stopped_search, tmp_path):
    folder = resumed_copy(stopped_search, tmp_path)
    theirs = folder / "checkpoints" / "checkpoint-4"
    before = folder_hash(theirs)
    run_search(tiny_search_args(folder, overwrite_output_dir=True, epochs=1, checkpoints_total_limit=1))
    # The new run kept one checkpoint of its own (step 4 replaced by overwrite) and left the other run's step 6.
    records = {
        path.name: json.loads((path / CHECKPOINT_RECORD).read_text())["run_id"]
        for path in (folder / "checkpoints").iterdir()
    }
    new_run = json.loads((folder / "run_record.json").read_text())["run_id"]
    assert records["checkpoint-4"] == new_run and records["checkpoint-6"] != new_run
    assert folder_hash(theirs) != before


def test_a_crafted_pickle_in_a_checkpoint_is_refused_before_it_runs(stopped_search, tmp_path):
    folder = resumed_copy(stopped_search, tmp_path)
    marker = tmp_path / "ran"

    # Accelerate reads custom_checkpoint_*.pkl with weights_only=False: this one would run.
    torch.save(
        {"epoch": RunsCode(os.system, f"touch {marker}")},
        folder / "checkpoints" / "checkpoint-6" / "custom_checkpoint_0.pkl",
    )
    with pytest.raises(ResumeError, match=r"custom_checkpoint_0.pkl: refusing to load the global posix.system"):
        run_search(tiny_search_args(folder, resume_from_checkpoint="latest"))
    assert not marker.exists()


@pytest.mark.parametrize("where", ["checkpoint", "final"])
def test_a_kill_9_during_a_save_then_resume_gives_the_uninterrupted_result(stopped_search, tmp_path, where):
    """A real SIGKILL in the middle of saving checkpoint-6 (written, not yet renamed), or of the final save (some
    final files moved in, the record not complete); resuming `latest` gives the uninterrupted search's result."""
    root, full = stopped_search
    folder = tmp_path / "killed"
    settings = vars(tiny_search_args(folder, order=1, checkpointing_steps=2))
    flags = [item for key, value in settings.items() if value is not None for item in (f"--{key}", str(value))]
    killed = subprocess.run(
        [sys.executable, str(TESTS / "kill_during_save.py"), where, *flags],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    record = json.loads((folder / "run_record.json").read_text())
    assert record["status"] == "running"  # the folder says it is not complete
    if where == "checkpoint":
        assert (folder / "checkpoints" / "checkpoint-6.partial").is_dir()
        assert not (folder / "checkpoints" / "checkpoint-6").exists()
    resumed = run_search(tiny_search_args(folder, order=1, checkpointing_steps=2, resume_from_checkpoint="latest"))
    torch.testing.assert_close(flat(resumed.weight_parameters()), flat(full.weight_parameters()), rtol=0, atol=1e-6)
    for ours, theirs in zip(resumed.arch_parameters(), full.arch_parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    record = json.loads((folder / "run_record.json").read_text())
    assert record["status"] == "complete" and all((folder / name).is_file() for name in record["files"])
    history = json.loads((folder / "alphas_history.json").read_text())
    assert history == json.loads((root / "full" / "alphas_history.json").read_text())


def test_the_push_publishes_exactly_the_recorded_files_which_the_card_lists(stopped_search, tmp_path, monkeypatch):
    import darts_hub.hub
    from darts_hub.training.publishing import publish_run

    folder = resumed_copy(stopped_search, tmp_path)
    (folder / ".env").write_text("HF_TOKEN=secret")
    (folder / "notes.txt").write_text("private")
    commits = []
    monkeypatch.setattr(
        darts_hub.hub,
        "create_commit",
        lambda **kwargs: commits.append(kwargs) or SimpleNamespace(commit_url="https://hub/commit"),
    )
    assert publish_run(folder, "someone/cell") == "https://hub/commit"
    [commit] = commits
    published = sorted(operation.path_in_repo for operation in commit["operations"])
    record = json.loads((folder / "run_record.json").read_text())
    assert published == sorted([*record["files"], "run_record.json"])
    assert ".env" not in published and "notes.txt" not in published and "supernet/model.safetensors" in published
    assert not [name for name in published if name.startswith("checkpoints")]
    card = (folder / "README.md").read_text()
    assert card.split("## Files")[1].split() == [item for name in published for item in ("-", f"`{name}`")]
