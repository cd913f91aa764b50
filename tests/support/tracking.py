"""StoredRun: what a real CellTracker logged, read back from a temporary SQLite MLflow store."""

from __future__ import annotations

from pathlib import Path

from tests.support.store import seed_store


class StoredRun:
    """A real CellTracker on a temporary SQLite MLflow store, and what the store holds afterwards, read
    back through MlflowClient: tests assert on what was logged, not on what a fake was handed."""

    def __init__(self, root: Path):
        from mlflow.tracking import MlflowClient

        from jsweep.tracking import CellTracker

        root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{seed_store(root / 'mlflow.db')}"
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


def cell_runs(client) -> list:
    """The cell runs (tag jsweep.kind=cell) of the ``jsweep`` experiment, as ``client`` sees them."""
    exp = client.get_experiment_by_name("jsweep")
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("jsweep.kind") == "cell"]
