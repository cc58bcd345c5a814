"""Which folder a run owns, what it records there, and what it publishes.

A run owns its `--output_dir`: it starts only in a new or empty folder, in its own folder when resuming, or in any
folder with `--overwrite_output_dir`. It writes `run_record.json` there at once (`status: running`: a run id, the
task, the settings, the versions, the command) and rewrites it last when the final files are in place (`status:
complete`, the list of those files, `train_runtime_seconds` summed over resumes). A folder whose record is not
complete was stopped before the end.

The push uploads exactly the files of that list (and the record), never anything else that lies in the folder.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import sys
import uuid
from pathlib import Path

from ..hub import create_hub_repo, push_folder, write_folder_atomically


RUN_RECORD = "run_record.json"
_VERSIONS = ("darts-hub", "torch", "transformers", "accelerate", "datasets", "huggingface-hub")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _command() -> list[str]:
    """The command line, with the value of --hub_token masked."""
    words = list(sys.argv)
    for index, word in enumerate(words):
        if word.startswith("--hub_token="):
            words[index] = "--hub_token=***"
        elif index and sys.argv[index - 1] == "--hub_token":
            words[index] = "***"
    return words


def read_run_record(output_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(output_dir) / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None


def write_run_record(output_dir: str | Path, record: dict) -> None:
    """Write `run_record.json` atomically (a temporary file renamed over it)."""
    path = Path(output_dir) / RUN_RECORD
    temporary = path.with_name(f".{RUN_RECORD}.partial")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(temporary, path)


def plan_run(output_dir: str | Path, task: str, settings: dict, resuming: bool, overwrite: bool) -> dict:
    """Check that this run may write into `output_dir` (see the module docstring) and return its run record (the
    resumed run's own when resuming in its folder). Writes nothing: `claim_output_dir` does, once the run's inputs
    are known to be good."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"--output_dir {output_dir} exists and is not a folder.")
    existing = read_run_record(output_dir)
    # A folder that holds nothing but a run record: that run wrote nothing else, so there is nothing to lose.
    others = [path for path in output_dir.iterdir() if path.name != RUN_RECORD] if output_dir.is_dir() else []
    if resuming and existing is not None and existing.get("task") == task:
        return {**existing, "status": "running", "resumed": [*existing.get("resumed", []), _now()]}
    if others and not overwrite:
        what = f"a {existing['task']} run" if existing else "files that no darts-hub run recorded"
        raise FileExistsError(
            f"--output_dir {output_dir} is not empty: it holds {what}. Nothing was written. Choose a new "
            "--output_dir; or continue that same run with --resume_from_checkpoint latest; or pass "
            "--overwrite_output_dir to write into it anyway (files of the same names are replaced)."
        )
    return {
        "run_id": uuid.uuid4().hex,
        "task": task,
        "status": "running",
        "started": _now(),
        "command": _command(),
        "versions": {name: _version(name) for name in _VERSIONS},
        "settings": settings,
    }


def claim_output_dir(output_dir: str | Path, record: dict) -> None:
    """Create `output_dir` if needed and write the run's record there."""
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        write_run_record(output_dir, record)
    except OSError as error:
        raise PermissionError(f"Cannot write to --output_dir {output_dir}: {error}") from error


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def complete_run(output_dir: str | Path, record: dict, files: list[str], runtime_seconds: float) -> dict:
    """Mark the run complete in `run_record.json`, with the files it wrote and its runtime over all resumes."""
    record = {
        **record,
        "status": "complete",
        "finished": _now(),
        "train_runtime_seconds": runtime_seconds,
        "files": sorted(set(files)),
    }
    write_run_record(output_dir, record)
    return record


def publish_run(output_dir: str | Path, repo_id: str, token: str | None = None) -> str:
    """Upload the files of a complete run (as listed in its record) and the record; returns the commit URL."""
    record = read_run_record(output_dir)
    if record is None or record.get("status") != "complete":
        raise ValueError(
            f"{output_dir} holds no complete run ({RUN_RECORD} missing or not complete): nothing to push."
        )
    return push_folder(output_dir, repo_id, [*record["files"], RUN_RECORD], token=token)


class OwnedFolder:
    """The output folder of one run (or protocol) through its life, the one place a result folder is written.

    Made when the run starts: checked (`plan_run`, which writes nothing); when it will be pushed, its Hub repository
    is created next (`create_repo`), so that a bad name or token fails before any work. Then `claim`ed once the
    run's inputs are known to be good (the record written), and `finish`ed at the end.
    """

    def __init__(self, output_dir: str | Path, task: str, settings: dict, resuming: bool, overwrite: bool):
        self.output_dir = Path(output_dir)
        self.record = plan_run(self.output_dir, task, settings, resuming, overwrite)
        self.repo_id = self.hub_token = None

    def create_repo(self, hub_model_id: str, hub_token: str | None = None, private: bool = False) -> None:
        """Create (or find) the Hub repository that `finish` pushes to."""
        self.repo_id, self.hub_token = create_hub_repo(hub_model_id, token=hub_token, private=private), hub_token

    def claim(self) -> None:
        claim_output_dir(self.output_dir, self.record)

    def finish(self, write, runtime_seconds: float, also_published: list[str] = ()) -> list[str]:
        """`write(folder)` the final files (into a temporary folder, then moved into the output folder), mark the run
        complete with their list (and `also_published`, files already in the folder that the push uploads too), and
        push them if a repository was created (a failed push raises `HubPushError`; the folder stays complete).
        Returns the files written."""
        files = write_folder_atomically(self.output_dir, write, overwrite=True)
        complete_run(self.output_dir, self.record, [*files, *also_published], runtime_seconds)
        if self.repo_id is not None:
            publish_run(self.output_dir, self.repo_id, token=self.hub_token)
        return files


__all__ = [
    "OwnedFolder",
    "RUN_RECORD",
    "claim_output_dir",
    "plan_run",
    "complete_run",
    "publish_run",
    "read_run_record",
    "write_run_record",
]
