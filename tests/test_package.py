"""The package as it is installed: one version, written once, and every command it installs."""

import sys
from importlib.metadata import entry_points, version

import pytest
from helpers import TESTS

import darts_hub


tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PROJECT = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["project"]


def test_the_version_is_written_once_and_installed_as_written():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]  # read from darts_hub.__version__
    assert darts_hub.__version__ == version("darts-hub")


@pytest.mark.parametrize("command", sorted(PROJECT["scripts"]))
def test_every_installed_command_answers_help(command, monkeypatch, capsys):
    (entry,) = entry_points(group="console_scripts", name=command)
    assert entry.value == PROJECT["scripts"][command]  # installed as declared
    monkeypatch.setattr(sys, "argv", [command, "--help"])
    with pytest.raises(SystemExit) as exit:
        entry.load()()
    assert exit.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_every_script_wraps_a_command_and_shadows_no_standard_module():
    """`python scripts/NAME.py` puts scripts/ first on the import path: a script named like a standard module
    (select.py, ...) would replace that module for every script (transformers imports `select` through subprocess)."""
    commands = {value.split(":")[0] for value in PROJECT["scripts"].values()}
    for script in sorted((TESTS.parent / "scripts").glob("*.py")):
        assert script.stem not in sys.stdlib_module_names, script.name
        assert f"darts_hub.commands.{script.stem}" in commands, script.name
