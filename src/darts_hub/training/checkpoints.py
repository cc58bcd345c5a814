"""Checkpoints of a run: written atomically, rotated among the run's own, resumed only when the resume is honest.

A checkpoint is Accelerate's `save_state` folder, written as `checkpoints/checkpoint-STEP.partial` and renamed to
`checkpoint-STEP` once every process has written its part and `checkpoint.json` (the run it belongs to, its step,
and the settings that determine the result) is in place. So a folder named `checkpoint-STEP` is always complete,
and a kill during a save leaves at most a `.partial` folder that resuming skips.

Resuming checks, before anything is loaded or written:
- `latest` is the newest complete checkpoint of this run (other runs' and partial or corrupt ones are skipped, with a
  warning naming them);
- the settings recorded in the checkpoint equal the current ones, else the resume is refused with every difference
  listed (`--accept_inexact_resume` allows it);
- every process's random states are there (else the run would silently not continue as it would have);
- every pickle in the folder passes `darts_hub.unpickling`'s restricted reader, because Accelerate loads some of them
  with `weights_only=False`: a crafted checkpoint is refused before it runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator

from ..unpickling import UnsafePickleError, load_torch_file


logger = logging.getLogger(__name__)

CHECKPOINTS_FOLDER = "checkpoints"
CHECKPOINT_RECORD = "checkpoint.json"
_NAME = re.compile(r"checkpoint-(\d+)")


class ResumeError(ValueError):
    """The checkpoint cannot be resumed honestly; the message says why and what to do."""


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The complete checkpoint folders of `output_dir` (of any run), oldest first."""
    folder = Path(output_dir) / CHECKPOINTS_FOLDER
    found = [path for path in folder.glob("checkpoint-*") if path.is_dir() and _NAME.fullmatch(path.name)]
    return sorted(found, key=lambda path: int(_NAME.fullmatch(path.name)[1]))


def read_checkpoint_record(checkpoint: Path) -> dict | None:
    """`checkpoint.json` of a checkpoint folder, or None if it is missing or unreadable."""
    try:
        return json.loads((checkpoint / CHECKPOINT_RECORD).read_text())
    except (OSError, ValueError):
        return None


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | Path, step: int, limit: int, run_id: str, settings: dict
) -> Path:
    """`save_state` into `checkpoints/checkpoint-STEP` (atomically, see the module docstring), then delete this
    run's checkpoints beyond the newest `limit`; other runs' checkpoints are never touched."""
    final = Path(output_dir) / CHECKPOINTS_FOLDER / f"checkpoint-{step}"
    partial = final.with_name(final.name + ".partial")
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        record = {"run_id": run_id, "step": step, "num_processes": accelerator.num_processes, "settings": settings}
        (partial / CHECKPOINT_RECORD).write_text(json.dumps(record, indent=1) + "\n")
        if final.exists():  # this run's own, from before a resume (or a run --overwrite_output_dir replaces)
            shutil.rmtree(final)
        os.replace(partial, final)
        own = [path for path in checkpoint_folders(output_dir) if _belongs_to(path, run_id)]
        for old in own[:-limit]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _belongs_to(checkpoint: Path, run_id: str) -> bool:
    record = read_checkpoint_record(checkpoint)
    return record is not None and record.get("run_id") == run_id


def latest_checkpoint(output_dir: str | Path, run_id: str) -> Path | None:
    """The newest complete checkpoint of run `run_id` in `output_dir`, skipping (with a warning) partial ones and
    those without a readable record."""
    folder = Path(output_dir) / CHECKPOINTS_FOLDER
    for partial in sorted(folder.glob("checkpoint-*.partial")):
        logger.warning("Skipping %s: its save did not complete (the run was stopped while saving).", partial)
    for checkpoint in reversed(checkpoint_folders(output_dir)):
        record = read_checkpoint_record(checkpoint)
        if record is None:
            logger.warning(
                "Skipping %s: it has no readable %s (corrupt or not darts-hub's).", checkpoint, CHECKPOINT_RECORD
            )
        elif record.get("run_id") == run_id:
            return checkpoint
    return None


def settings_differences(recorded: dict, current: dict) -> list[str]:
    """One line per setting whose value differs between a checkpoint and the current run."""
    current = json.loads(json.dumps(current))  # tuples as lists, as recorded
    return [
        f"--{name}: {recorded.get(name)!r} in the checkpoint, {current.get(name)!r} now"
        for name in sorted(set(recorded) | set(current))
        if recorded.get(name) != current.get(name)
    ]


def check_checkpoint(checkpoint: Path, settings: dict, num_processes: int, accept_inexact: bool) -> None:
    """Refuse a checkpoint that would not resume this run exactly (see the module docstring), or that holds a
    pickle our restricted reader refuses."""
    record = read_checkpoint_record(checkpoint)
    if record is None:
        raise ResumeError(f"{checkpoint} has no readable {CHECKPOINT_RECORD}: it is incomplete or not darts-hub's.")
    problems = settings_differences(record.get("settings", {}), settings)
    missing = [f"random_states_{rank}.pkl" for rank in range(num_processes)]
    missing = [name for name in missing if not (checkpoint / name).is_file()]
    if missing:
        problems.append(f"random states missing ({', '.join(missing)}): the data order and dropout would differ")
    if problems and not accept_inexact:
        raise ResumeError(
            f"Resuming from {checkpoint} would not continue the same run:\n  " + "\n  ".join(problems) + "\nRun with "
            "the checkpoint's settings, start a new --output_dir, or pass --accept_inexact_resume to resume anyway."
        )
    for problem in problems:
        logger.warning("Inexact resume from %s: %s", checkpoint, problem)
    for path in sorted(checkpoint.iterdir()):
        if path.suffix in (".pkl", ".bin", ".pt", ".pth"):
            try:
                load_torch_file(path)
            except UnsafePickleError as error:
                raise ResumeError(f"Refusing to resume from {checkpoint}: {error}") from error


def select_checkpoint(output_dir: str | Path, resume_from_checkpoint: str | None, run_id: str) -> Path | None:
    """The checkpoint named by `--resume_from_checkpoint` ('latest': this run's newest complete checkpoint in
    `output_dir`, if any), or None to start from scratch."""
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint == "latest":
        checkpoint = latest_checkpoint(output_dir, run_id)
        if checkpoint is None:
            logger.warning(
                "No checkpoint of this run in %s: starting from scratch.", Path(output_dir) / CHECKPOINTS_FOLDER
            )
        return checkpoint
    checkpoint = Path(resume_from_checkpoint)
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"No checkpoint folder at {checkpoint}: pass a checkpoint-N folder, or 'latest'.")
    return checkpoint


__all__ = [
    "CHECKPOINTS_FOLDER",
    "ResumeError",
    "check_checkpoint",
    "checkpoint_folders",
    "latest_checkpoint",
    "save_checkpoint",
    "select_checkpoint",
    "settings_differences",
]
