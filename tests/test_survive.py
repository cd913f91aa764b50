"""Nothing lost, nothing duplicated, nothing leaked (issue 14): secrets planted on every route, two
sweeps at once, a launcher that dies, corrupt state, pre-flight of bad values. Each test runs the
real CLI and asserts on the MLflow store and the cell directories."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import cli_env, run_jsweep
from test_resilience import FAST, STALLED, _alive, _cells, _child_runs, _free_port, _popen, _server, _stalled, _stop, \
    _wait_for

TINY = ["train.max_steps=2", "eval=[]"]


def _server_up(uri: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200
    except OSError:
        return False


def _files_holding(root: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every file under ``root`` (binary ones too: the SQLite store) that holds one of ``needles``."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


# --------------------------------------------------------------------------- 1. secrets

def test_secrets_planted_on_every_route_reach_no_param_tag_artifact_state_file_or_log(tmp_path, tiny_model_dir):
    """A credential in the tracking URI's user information, a token under an open section given as a
    raw override (`+experiment.hf_token`), a credential-like key in `model.arch`, and a failing cell
    whose log tail is logged. Afterwards the whole tree (output directory, a real `mlflow server`'s
    SQLite database and artifact store) is searched for every planted value."""
    tag = uuid.uuid4().hex[:10]
    password, token, arch_key = f"PLANTEDpw{tag}", f"hf_PLANTEDtok{tag}abcdefghijk", f"PLANTEDarch{tag}"
    port = _free_port()
    server = _server(tmp_path, port)
    uri = f"http://jsweep:{password}@127.0.0.1:{port}"
    plain = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _server_up(plain), timeout=90, what="the MLflow server")
        proc = run_jsweep(["-m", "lr=1e-5,1e-4", f"+experiment.hf_token={token}", f"+model.arch.api_key={arch_key}",
                           f"tracking.uri={uri}", *TINY], tmp_path, JSWEEP_FAULT="raise@1:lr=1e-05")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out[-3000:]          # one cell failed on purpose: its log tail is logged
        from mlflow.tracking import MlflowClient

        client = MlflowClient(plain)
        runs = _child_runs(client)
        assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"], out[-3000:]
        failed = next(r for r in runs if r.info.status == "FAILED")
        assert "injected fault" in failed.data.tags["jsweep.log_tail"]
        assert all(r.data.params["cfg.tracking.uri"] == f"http://***@127.0.0.1:{port}" for r in runs)
        parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
        assert "+experiment.hf_token=***" in parent.data.params["grid"]
        assert "tracking.uri=http://***@127.0.0.1" in parent.data.params["grid"]
        finished = next(r for r in runs if r.info.status == "FINISHED")
        artifacts = {a.path for a in client.list_artifacts(finished.info.run_id)}
        assert {"config.yaml", "cell.log"} <= artifacts
    finally:
        _stop(server)
    cells = _cells(tmp_path)
    log = (cells[0] / "cell.log").read_text() + (cells[1] / "cell.log").read_text()
    assert "View run" in log and "http://***@127.0.0.1" in log     # MLflow's own line, masked
    multirun = next((tmp_path / "outputs" / "sweeps").glob("*/multirun.yaml")).read_text()
    assert "hf_token=***" in multirun
    leaks = _files_holding(tmp_path, [password, token, arch_key])
    assert not leaks, leaks
    assert not any(s in out for s in (password, token, arch_key)), "the console shows no secret either"


def test_redaction_masks_credentials_but_keeps_token_counts():
    from jsweep.redaction import redact, redact_text, restore, secrets_in

    assert redact_text("🏃 View run x at: http://u:pw123@host:5000/#/x") == "🏃 View run x at: http://***@host:5000/#/x"
    assert redact_text("+experiment.hf_token=abcdef lr=1e-4") == "+experiment.hf_token=*** lr=1e-4"
    assert redact_text('{"api_key": "zzzz1234", "n": 3}') == '{"api_key": "***", "n": 3}'
    assert redact_text("model.arch.pad_token_id=3 max_new_tokens=8") == "model.arch.pad_token_id=3 max_new_tokens=8"
    cfg = {"model": {"arch": {"pad_token_id": 1, "secret_key": "s3cr3t"}}, "tracking": {"uri": "http://u:p4ss@h"},
           "metrics": {"train/tokens_per_second": 3.0, "train/token_accuracy": 0.5}}
    clean = redact(cfg)
    assert clean["model"]["arch"] == {"pad_token_id": 1, "secret_key": "***"}
    assert clean["tracking"]["uri"] == "http://***@h" and clean["metrics"] == cfg["metrics"]
    uris = secrets_in(cfg, keys=False)
    assert uris == {"tracking.uri": "http://u:p4ss@h"} and restore(clean, uris)["tracking"]["uri"] == "http://u:p4ss@h"
