"""Pushing to the Hub: a failed upload leaves the folder intact and says how to retry."""

import pytest

from darts_hub.hub import HubPushError, push_folder


def test_push_failure_leaves_the_folder_intact(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "config.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(
        HubPushError,
        match=r"(?s)local folder is complete and unchanged.*hf upload someone/cell .* --include .config.json.",
    ):
        push_folder(tmp_path, "someone/cell", ["config.json"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
