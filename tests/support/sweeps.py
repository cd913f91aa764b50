"""The tiny-sweep runner: the real CLI in a temp directory against a temp SQLite MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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


def run_jsweep(args: list[str], cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m jsweep ARGS`` in ``cwd`` (MLflow store: cwd/mlflow.db), capturing output."""
    return subprocess.run(
        [sys.executable, "-m", "jsweep", *args],
        cwd=cwd,
        env=cli_env(cwd, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_jsweep(args: list[str], cwd: Path, *, popen: dict | None = None, **env: str) -> subprocess.Popen:
    """``python -m jsweep ARGS`` started as ``run_jsweep`` runs it, without waiting: independent runs at the
    same time (each in its own directory and store). ``finish`` waits for it. ``popen``: further
    ``subprocess.Popen`` options over the default of stdout and stderr piped apart."""
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
