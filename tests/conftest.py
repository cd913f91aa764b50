"""Shared test helpers: run the real CLI in a temp directory against a temp SQLite MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY_ARCH = yaml.safe_load((ROOT / "conf" / "model" / "tiny.yaml").read_text())["arch"]


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"})
    env.update(extra)
    return env


def run_jsweep(args: list[str], cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m jsweep ARGS`` in ``cwd`` (MLflow store: cwd/mlflow.db), capturing output."""
    return subprocess.run([sys.executable, "-m", "jsweep", *args], cwd=cwd, env=cli_env(cwd, **env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def real_jglue() -> Path:
    """Real JGLUE v1.3 files: $JSWEEP_REAL_JGLUE, else ../shared/data/jglue-v1.3 beside the checkout.

    Where the variable is set (CI sets it), missing data fails the test instead of skipping it.
    """
    configured = os.environ.get("JSWEEP_REAL_JGLUE")
    path = Path(configured) if configured else ROOT.parent / "shared" / "data" / "jglue-v1.3"
    if not (path / "jcommonsenseqa" / "valid-v1.3.json").exists():
        if configured:
            pytest.fail(f"JSWEEP_REAL_JGLUE={configured} holds no JGLUE v1.3 files")
        pytest.skip(f"real JGLUE files not present ({path}); set JSWEEP_REAL_JGLUE")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from jsweep.models.tiny import build_tiny

    return build_tiny(TINY_ARCH)


@pytest.fixture
def mlflow_client_for():
    def make(path: Path):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=f"sqlite:///{path / 'mlflow.db'}")

    return make
