"""The long-running commands start again under tcmalloc where the machine has it, and only then."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS

from darts_hub import allocator


SCRIPTS = TESTS.parent / "scripts"


@pytest.fixture
def restarts(monkeypatch):
    """Catch the restart instead of doing it: the list of (executable, argv, environment) it was asked for."""
    calls = []
    monkeypatch.setattr(allocator.os, "execve", lambda *call: calls.append(call))
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setenv("DARTS_HUB_ALLOCATOR", "tcmalloc")
    return calls


def test_a_command_restarts_itself_under_tcmalloc_with_the_same_command_line():
    """For real: the benchmark command, started with the system's allocator, reports that its step ran under
    tcmalloc."""
    if allocator.find_tcmalloc() is None:
        pytest.skip("tcmalloc is not installed here (apt-get install libtcmalloc-minimal4)")
    environment = {key: value for key, value in os.environ.items() if key not in ("DARTS_HUB_ALLOCATOR", "LD_PRELOAD")}
    command = [sys.executable, str(SCRIPTS / "benchmark.py"), "--workload", "inference", "--batch_size", "2"]
    result = subprocess.run(
        [*command, "--steps", "1", "--warmup", "0"], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["allocator"] == "tcmalloc" and report["batch_size"] == 2
    assert allocator.current_allocator() == "system"  # this process: the system's


def test_the_restart_preloads_tcmalloc_before_what_was_preloaded(restarts, monkeypatch, tmp_path):
    library = tmp_path / "libtcmalloc_minimal.so.4"
    library.write_bytes(b"")
    monkeypatch.setattr(allocator, "library_folders", lambda: [tmp_path / "missing", tmp_path])
    monkeypatch.setenv("LD_PRELOAD", "/opt/other.so")
    allocator.run_under_tcmalloc()
    [(executable, argv, environment)] = restarts
    assert executable == sys.executable and argv == sys.orig_argv
    assert environment["LD_PRELOAD"] == f"{library} /opt/other.so"
    assert environment["DARTS_HUB_ALLOCATOR"] == "tcmalloc"  # the rest of the environment is kept


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DARTS_HUB_ALLOCATOR", "system"), ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")],
)
def test_no_restart_when_asked_for_the_system_allocator_or_already_under_tcmalloc(
    restarts, monkeypatch, variable, value
):
    monkeypatch.setattr(allocator, "find_tcmalloc", lambda: Path("/usr/lib/libtcmalloc.so.4"))
    monkeypatch.setenv(variable, value)
    allocator.run_under_tcmalloc()
    assert restarts == []


def test_without_tcmalloc_a_warning_says_how_to_get_it(restarts, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(allocator, "library_folders", lambda: [tmp_path])
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    with caplog.at_level(logging.WARNING, logger="darts_hub.allocator"):
        allocator.run_under_tcmalloc()
    assert restarts == []
    assert "tcmalloc was not found" in caplog.text and "apt-get install libtcmalloc-minimal4" in caplog.text
    assert "DARTS_HUB_ALLOCATOR=system" in caplog.text


def test_an_unknown_choice_is_refused(restarts, monkeypatch):
    monkeypatch.setenv("DARTS_HUB_ALLOCATOR", "jemalloc")
    with pytest.raises(
        ValueError, match="DARTS_HUB_ALLOCATOR='jemalloc': use 'tcmalloc' \\(the default\\) or 'system'"
    ):
        allocator.run_under_tcmalloc()
    assert restarts == []
