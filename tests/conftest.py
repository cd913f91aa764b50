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


class StoredRun:
    """A real CellTracker on a temporary SQLite MLflow store, and what the store holds afterwards, read
    back through MlflowClient: tests assert on what was logged, not on what a fake was handed."""

    def __init__(self, root: Path):
        from mlflow.tracking import MlflowClient

        from jsweep.tracking import CellTracker

        root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.create_experiment("tests", artifact_location=(root / "mlartifacts").as_uri())
        self.run_id = self.client.create_run(exp).info.run_id
        self.cell_dir = root / "cell"
        self.cell_dir.mkdir(exist_ok=True)
        self.tracker = CellTracker(self.uri, self.run_id, self.cell_dir)
        self._root = root

    @property
    def tags(self) -> dict[str, str]:
        return {k: v for k, v in self.client.get_run(self.run_id).data.tags.items() if not k.startswith("mlflow.")}

    @property
    def params(self) -> dict[str, str]:
        return self.client.get_run(self.run_id).data.params

    def history(self, key: str) -> list[tuple[int, float]]:
        """Every (step, value) logged for ``key``, in step order: a step logged twice shows twice."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(self.run_id, key))

    def metric_keys(self) -> set[str]:
        return set(self.client.get_run(self.run_id).data.metrics)

    def artifacts(self, path: str = "") -> list[str]:
        out = []
        for info in self.client.list_artifacts(self.run_id, path or None):
            out.extend(self.artifacts(info.path) if info.is_dir else [info.path])
        return sorted(out)

    def artifact_json(self, name: str):
        import json

        local = self.client.download_artifacts(self.run_id, name, str(self._root / "downloads"))
        return json.loads(Path(local).read_text(encoding="utf-8"))

    def table(self, name: str) -> list[dict]:
        """A table logged with log_table, back as rows (MLflow stores columns and data)."""
        stored = self.artifact_json(name)
        return [dict(zip(stored["columns"], row)) for row in stored["data"]]

    def tables(self, prefix: str) -> dict[str, list[dict]]:
        return {name: self.table(name) for name in self.artifacts() if name.startswith(prefix)}


@pytest.fixture
def stored_run(tmp_path) -> StoredRun:
    return StoredRun(tmp_path / "store")
