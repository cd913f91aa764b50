"""The tiny-sweep runner: the real CLI in a temp directory against a temp SQLite MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.store import seed_store


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    env.update(extra)
    return env


def _store(cwd: Path, fresh_store: bool, env: dict[str, str]) -> None:
    """An empty store at cwd/mlflow.db (tests.support.store) unless the test wants none there, or points
    MLFLOW_TRACKING_URI elsewhere."""
    if not fresh_store and "MLFLOW_TRACKING_URI" not in env:
        seed_store(cwd / "mlflow.db")


def run_jsweep(
    args: list[str], cwd: Path, timeout: int = 600, *, fresh_store: bool = False, **env: str
) -> subprocess.CompletedProcess:
    """Run ``python -m jsweep ARGS`` in ``cwd`` (MLflow store: cwd/mlflow.db), capturing output.
    ``fresh_store``: no store there yet unless an earlier run made one (else an empty one is put there)."""
    _store(cwd, fresh_store, env)
    return subprocess.run(
        [sys.executable, "-m", "jsweep", *args],
        cwd=cwd,
        env=cli_env(cwd, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_jsweep(
    args: list[str], cwd: Path, *, popen: dict | None = None, fresh_store: bool = False, **env: str
) -> subprocess.Popen:
    """``python -m jsweep ARGS`` started as ``run_jsweep`` runs it, without waiting: independent runs at the
    same time (each in its own directory and store). ``finish`` waits for it. ``popen``: further
    ``subprocess.Popen`` options over the default of stdout and stderr piped apart."""
    _store(cwd, fresh_store, env)
    return subprocess.Popen(
        [sys.executable, "-m", "jsweep", *args],
        cwd=cwd,
        env=cli_env(cwd, **env),
        text=True,
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **(popen or {})},
    )


def finish(proc: subprocess.Popen, timeout: int = 600) -> subprocess.CompletedProcess:
    """Wait for a ``start_jsweep`` process; what ``run_jsweep`` would have returned."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
