"""Tests never touch the network: the Hub is unreachable on our machines and must fail fast, not retry."""

import os
import runpy
import sys
from pathlib import Path

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


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
