"""MLflow tracking: one parent run per sweep invocation, one nested child run per cell.

The launcher (parent process) creates the runs and logs params and tags, so a cell that dies
before logging anything still has a run with its config and a FAILED status. The cell process
attaches to its child run by id and logs metrics and artifacts.

Secrets never reach MLflow: keys that look like credentials are dropped from params and tags,
and every value goes through jsweep.redaction (URI user information, token-shaped and known
secret values are masked), as does the logged config.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from jsweep import cellstate
from jsweep.redaction import is_secret, redact, redact_text

MAX_PARAM_LEN = 6000


def resolve_uri(uri: str | None) -> str:
    """The tracking URI: the config's, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config to dotted keys with string values, dropping secrets."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif not is_secret(name, value):
            text = "null" if value is None else redact_text(str(value))
            out[name] = text[:MAX_PARAM_LEN]
    return out


def git_commit(path: str | Path | None = None) -> str:
    """HEAD of the git repo at ``path`` (cwd by default), with '-dirty' when it has changes."""
    cwd = str(path or Path.cwd())
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _client(uri: str):
    """An MlflowClient for ``uri``. An SQLite store is opened (created, migrated) under its lock file,
    so two processes opening a fresh store at once do not both create its tables."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from jsweep.locking import sqlite_path, store_lock

    mlflow.set_tracking_uri(uri)
    with store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        if sqlite_path(uri) is not None:
            client.search_experiments(max_results=1)  # creates and migrates the store, once
    return client


def _batches(items: list, size: int = 100) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SweepTracker:
    """Launcher-side tracking: creates the parent run and the child runs, and closes them."""

    def __init__(self, uri: str | None, experiment: str):
        from jsweep.errors import TrackingUnreachable

        self.uri = resolve_uri(uri)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast; journaled instead
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from jsweep.locking import store_lock

        try:
            self.client = _client(self.uri)
            with store_lock(self.uri):  # two sweeps starting together create the experiment once
                exp = self.client.get_experiment_by_name(experiment)
                if exp is None:
                    try:
                        self.experiment_id = self.client.create_experiment(experiment)
                    except Exception:  # created meanwhile by another process (tracking server)
                        exp = self.client.get_experiment_by_name(experiment)
                        if exp is None:
                            raise
                if exp is not None:
                    self.experiment_id = exp.experiment_id
        except Exception as exc:  # any store failure at start is one line, before anything is launched
            raise TrackingUnreachable(
                redact_text(
                    f"tracking store {self.uri} is unreachable ({type(exc).__name__}: "
                    f"{(str(exc).splitlines() or [''])[0][:200]}); nothing was launched"
                )
            ) from None
        self.parent_id: str | None = None

    def start_parent(self, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent_id = run.info.run_id
        self.log_params(self.parent_id, params)
        return self.parent_id

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], redact_text(str(v))) for k, v in params.items() if not is_secret(k, v)]
        for batch in _batches(items):
            self.client.log_batch(run_id, params=batch)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, redact_text(str(v))[:5000]) for k, v in tags.items() if not is_secret(k, v)]
        for batch in _batches(items):
            self.client.log_batch(run_id, tags=batch)

    def create_child(self, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
        assert self.parent_id, "start_parent first"
        tags = {"mlflow.parentRunId": self.parent_id, **tags}
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def finished_cells(self, cell_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Cells of this experiment with a FINISHED run and complete results: {cell_id: {run_id, metrics}}."""
        out: dict[str, dict[str, Any]] = {}
        if not cell_ids:
            return out
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                "attributes.status = 'FINISHED' and tags.`jsweep.complete` = 'true'",
                max_results=1000,
                page_token=token,
            )
            for run in page:
                cid = run.data.tags.get("jsweep.cell_id")
                if cid in cell_ids and cid not in out:
                    out[cid] = {"run_id": run.info.run_id, "metrics": dict(run.data.metrics)}
            token = page.token
            if not token:
                return out

    def reopen(self, run_id: str, tags: dict[str, str | None]) -> None:
        """Continue an interrupted run (status RUNNING again) instead of creating a duplicate; empty tags are left out."""
        self.client.update_run(run_id, status="RUNNING")
        self.set_tags(run_id, {k: v for k, v in tags.items() if v})


class Journal:
    """Tracking calls that could not reach the server, kept in a JSON-lines file for ``jsweep sync``.

    Each line is one call (``log_batch``, ``set_tags``, ``log_artifact``, ``log_table``,
    ``set_terminated``). Replaying the journal in order and then clearing it re-logs exactly
    what is missing: calls that succeeded never enter it, so a sync makes no duplicates.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, op: dict[str, Any]) -> None:
        from jsweep.files import append_line

        append_line(self.path, json.dumps(redact(op), ensure_ascii=False, default=str))

    def ops(self, warn: bool = True) -> list[dict[str, Any]]:
        """The journaled calls, in order. A line that is not a whole call (a process killed mid-write, a
        damaged disk) is skipped with a warning naming the file and line; the rest is kept."""
        import sys

        if not self.path.exists():
            return []
        out = []
        text = self.path.read_bytes().decode("utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                op = json.loads(line)
                if not isinstance(op, dict) or "op" not in op:
                    raise ValueError("not a tracking call")
            except ValueError as exc:
                if warn:
                    print(
                        f"jsweep: warning: {self.path}: line {n} is not a whole tracking call, skipped "
                        f"({type(exc).__name__})",
                        file=sys.stderr,
                    )
                continue
            out.append(op)
        return out

    def __len__(self) -> int:
        return len(self.ops(warn=False))

    def rewrite(self, ops: list[dict[str, Any]]) -> None:
        if ops:
            self.path.write_text("".join(json.dumps(o, ensure_ascii=False, default=str) + "\n" for o in ops))
        else:
            self.path.unlink(missing_ok=True)


def apply_op(client: Any, run_id: str, op: dict[str, Any]) -> None:
    """Perform one journaled tracking call against ``client``."""
    from mlflow.entities import Metric, RunTag

    kind = op["op"]
    if kind == "log_batch":
        client.log_batch(run_id, metrics=[Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in op["metrics"]])
    elif kind == "set_tags":
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in op["tags"].items()])
    elif kind == "log_artifact":
        client.log_artifact(run_id, op["path"], op.get("artifact_path"))
    elif kind == "log_table":
        client.log_table(
            run_id, data=json.loads(Path(op["path"]).read_text(encoding="utf-8")), artifact_file=op["artifact_file"]
        )
    elif kind == "log_params":
        from mlflow.entities import Param

        client.log_batch(run_id, params=[Param(k, v) for k, v in op["params"].items()])
    elif kind == "set_terminated":
        client.set_terminated(run_id, op["status"])
    else:
        raise ValueError(f"unknown journal op {kind!r}")


def fail_ops(error_class: str, message: str, log_file: Path | None, status: str = "FAILED") -> list[dict[str, Any]]:
    """The tracking calls that mark a cell's run failed: error tags, the log tail and file, the status."""
    tail = ""
    if log_file and log_file.exists():
        tail = redact_text("\n".join(log_file.read_text(errors="replace").splitlines()[-40:]))
    ops: list[dict[str, Any]] = [
        {
            "op": "set_tags",
            "tags": {
                "jsweep.error_class": error_class,
                "jsweep.error": redact_text(message)[:1000],
                "jsweep.log_tail": tail[-4000:],
            },
        }
    ]
    if log_file and log_file.exists():
        ops.append({"op": "log_artifact", "path": str(log_file), "artifact_path": None})
    ops.append({"op": "set_terminated", "status": status})
    return ops


class CellTracker:
    """Cell-side tracking: logs into the child run the launcher created, through MlflowClient.

    A call that fails (tracking server down, network gone) does not stop training: it goes to
    the cell's journal (``<cell_dir>/tracking_journal.jsonl``) and ``jsweep sync`` re-logs it.
    Dicts and tables are also written under ``<cell_dir>/artifacts/`` so nothing exists only in
    MLflow.
    """

    def __init__(self, uri: str, run_id: str, cell_dir: Path):
        self.uri, self.run_id, self.cell_dir = uri, run_id, Path(cell_dir)
        self.journal = Journal(self.cell_dir / cellstate.JOURNAL)
        self.local = self.cell_dir / "artifacts"
        self.failures = 0
        try:
            # JSWEEP_TRACKING_OFFLINE=1: the cell runs where the server cannot be reached (a compute node);
            # everything is journaled and the launcher logs it from the login node.
            self.client = None if os.environ.get("JSWEEP_TRACKING_OFFLINE") == "1" else _client(uri)
        except Exception:  # an unreachable store at start is journaled too
            self.client = None

    def _do(self, op: dict[str, Any]) -> None:
        if self.client is not None and self.run_id:
            try:
                apply_op(self.client, self.run_id, op)
                return
            except Exception as exc:  # any tracking failure is journaled, never raised
                self.failures += 1
                if self.failures == 1:
                    print(
                        f"[jsweep] warning: tracking unreachable ({type(exc).__name__}); results are kept in "
                        f"{self.journal.path} for `jsweep sync`",
                        flush=True,
                    )
        self.journal.append(op)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time as _time

        ts = int(_time.time() * 1000)
        rows = [[k, float(v), ts, step or 0] for k, v in metrics.items() if v is not None]
        for i in range(0, len(rows), 500):
            self._do({"op": "log_batch", "metrics": rows[i : i + 500]})

    def set_tags(self, tags: dict[str, Any]) -> None:
        clean = {k: redact_text(str(v))[:5000] for k, v in tags.items() if not is_secret(k, v)}
        if clean:
            self._do({"op": "set_tags", "tags": clean})

    def log_params(self, params: dict[str, Any]) -> None:
        """Params the cell decides itself (e.g. the attention implementation it could run)."""
        clean = {k: str(v)[:6000] for k, v in params.items() if not is_secret(k, v)}
        if clean:
            self._do({"op": "log_params", "params": clean})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._do({"op": "log_artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path})

    def log_dict(self, obj: Any, name: str) -> None:
        """Write ``obj`` (secrets redacted) as JSON or YAML under artifacts/ and log it as ``name``."""
        target = self.local / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith((".yaml", ".yml")):
            import yaml

            target.write_text(yaml.safe_dump(redact(obj), allow_unicode=True, sort_keys=False), encoding="utf-8")
        else:
            target.write_text(json.dumps(redact(obj), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        parent = str(Path(name).parent)
        self.log_artifact(target, None if parent == "." else parent)

    def log_table(self, rows: list[dict[str, Any]], name: str) -> None:
        """A table artifact (shown as a table in the MLflow UI), also kept under artifacts/."""
        if not rows:
            return
        columns = {k: [r.get(k) for r in rows] for k in rows[0]}
        target = self.local / (name + ".columns.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(columns, ensure_ascii=False, default=str), encoding="utf-8")
        self._do({"op": "log_table", "path": str(target), "artifact_file": name})

    def end(self, status: str = "FINISHED") -> None:
        self._do({"op": "set_terminated", "status": status})


class NullTracker:
    """The tracker of ranks other than 0 in a multi-GPU cell: rank 0 logs for the cell."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_dict(self, obj: Any, name: str) -> None: ...
    def log_table(self, rows: list[dict[str, Any]], name: str) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class Tracker(Protocol):
    """What a cell's stages log through (CellContext.tracker): a CellTracker, or a NullTracker on ranks > 0."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_dict(self, obj: Any, name: str) -> None: ...
    def log_table(self, rows: list[dict[str, Any]], name: str) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...
