"""State files are replaced atomically: a reader or a kill mid-write never leaves a truncated file."""

from __future__ import annotations

import json
import os

import pytest

from jsweep.files import write_json


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "status.json"
    write_json(path, {"status": "RUNNING"})
    write_json(path, {"status": "FINISHED", "text": "日本語"}, ensure_ascii=False)
    assert json.loads(path.read_text(encoding="utf-8")) == {"status": "FINISHED", "text": "日本語"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_write_that_fails_keeps_the_previous_content(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"train/loss": 1.0})

    def crash(src, dst):
        raise OSError("disk full")  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"train/loss": 0.5})
    assert json.loads(path.read_text()) == {"train/loss": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_unserialisable_object_fails_before_touching_the_file(tmp_path):
    path = tmp_path / "cell.json"
    write_json(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}


def test_state_files_get_the_usual_permissions(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"cells": []})
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # as open() would create it, under this umask
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
