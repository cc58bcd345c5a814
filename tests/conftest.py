"""Tests never touch the network: the Hub is unreachable on our machines and must fail fast, not retry."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The commands start again under tcmalloc where the machine has it (`darts_hub.allocator`): in this process (the
# scripts run in-process here) that would restart the test session. tests/test_allocator.py tests the restart itself.
os.environ.setdefault("DARTS_HUB_ALLOCATOR", "system")


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def run_script(monkeypatch, capsys):
    """Run `scripts/NAME.py` with command-line arguments, in this process (a subprocess would spend ~6 s importing
    transformers each time); returns what it printed."""

    def run(name: str, *args: str) -> str:
        monkeypatch.setattr(sys, "argv", [str(SCRIPTS / f"{name}.py"), *map(str, args)])
        capsys.readouterr()
        runpy.run_path(str(SCRIPTS / f"{name}.py"), run_name="__main__")
        return capsys.readouterr().out

    return run


@pytest.fixture
def launch_two_processes():
    """Run a script under `accelerate launch` with two CPU processes (DDP over gloo); fails the test with the end of
    the processes' error output if the run fails."""

    def launch(script: Path, *args: str) -> None:
        command = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(script),
            *map(str, args),
        ]
        environment = {**os.environ, "ACCELERATE_USE_CPU": "true"}
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]

    return launch
