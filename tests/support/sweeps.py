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
