"""The suite's seeded stores (tests.support.store) against what MLflow itself builds in the same place:
the same schema and version, the same rows, the Default experiment's artifact location beside the store,
and a store jsweep's own tracker then writes to as to any other."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.support.store import seed_store


def _dump(db: Path) -> tuple[list, dict[str, list]]:
    """The store's schema (every CREATE statement, its lines sorted: the order of a table's constraints
    follows Python's string hashing, which differs between two processes) and its rows by table, times
    left out."""
    con = sqlite3.connect(db)
    try:
        schema = sorted(
            (kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
            for kind, name, sql in con.execute("SELECT type, name, sql FROM sqlite_master")
        )
        tables = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {}
        for table in tables:
            cols = [c[1] for c in con.execute(f"PRAGMA table_info({table})")]
            keep = [c for c in cols if c not in ("creation_time", "last_update_time")]
            rows[table] = sorted(con.execute(f"SELECT {', '.join(keep)} FROM {table}").fetchall(), key=repr)
        return schema, rows
    finally:
        con.close()


def test_a_seeded_store_is_the_store_mlflow_builds_there(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    built = tmp_path / "built"
    built.mkdir()
    monkeypatch.chdir(built)  # the CLI opens its store from the store's directory: ./mlruns lands beside it
    MlflowClient(tracking_uri=f"sqlite:///{built / 'mlflow.db'}").search_experiments()
    before = int(time.time() * 1000)
    seeded = seed_store(tmp_path / "seeded" / "mlflow.db")

    schema, rows = _dump(built / "mlflow.db")
    seeded_schema, seeded_rows = _dump(seeded)
    assert seeded_schema == schema
    expected = {**rows, "experiments": [(0, "Default", str(tmp_path / "seeded" / "mlruns" / "0"), "active", "default")]}
    assert rows["experiments"] == [(0, "Default", str(built / "mlruns" / "0"), "active", "default")]
    assert seeded_rows == expected
    con = sqlite3.connect(seeded)
    (created, updated), *_ = con.execute("SELECT creation_time, last_update_time FROM experiments").fetchall()
    con.close()
    assert before <= created == updated <= int(time.time() * 1000)  # made now, not when the copy was

    # and a store like any other: MLflow opens it, jsweep's tracker logs to it
    from jsweep.tracking import CellTracker

    client = MlflowClient(tracking_uri=f"sqlite:///{seeded}")
    run = client.create_run(client.create_experiment("jsweep"))
    tracker = CellTracker(f"sqlite:///{seeded}", run.info.run_id, tmp_path / "cell")
    tracker.log_metrics({"train/loss": 1.5}, step=1)
    tracker.end()
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")] == [(1, 1.5)]


def test_a_store_already_there_is_left_as_it_is(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"not touched")
    assert seed_store(db) == db and db.read_bytes() == b"not touched"
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]  # no half copy left beside it
