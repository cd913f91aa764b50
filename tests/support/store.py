"""An empty MLflow SQLite store where a test's store goes, without MLflow's seconds of migrations each time.

MLflow builds a new SQLite store by running every one of its schema migrations, 1.8 s of CPU on a quiet
core. Nearly every test that runs the CLI or a CellTracker starts from an empty store, so the suite paid
that a hundred times. Here MLflow builds one empty store per test process, and each test gets a copy of it, with the one
row MLflow fills from where and when it was made (the Default experiment: its artifact location beside the
store, as the CLI makes it from the store's directory, and its times) set for the copy.

Tests of what jsweep does to a store that does not exist yet (the first sweep, two sweeps at once on no
store, bad input that must leave no store behind) start without one: ``run_jsweep(..., fresh_store=True)``.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

_template: Path | None = None


def _empty_store() -> Path:
    """MLflow's own empty store, made once in this process (MlflowClient creates it on first use)."""
    global _template
    if _template is None:
        from mlflow.tracking import MlflowClient

        db = Path(tempfile.mkdtemp(prefix="jsweep-empty-store-")) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
        _template = db
    return _template


def seed_store(db: Path) -> Path:
    """Put an empty MLflow store at ``db`` unless a file is there already; returns ``db``."""
    if db.exists():
        return db
    db.parent.mkdir(parents=True, exist_ok=True)
    partial = db.with_name(db.name + ".seeding")
    shutil.copyfile(_empty_store(), partial)
    now = int(time.time() * 1000)
    with sqlite3.connect(partial) as con:
        con.execute(
            "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
            "WHERE experiment_id = 0",
            (str(db.parent / "mlruns" / "0"), now, now),
        )
    con.close()
    partial.replace(db)  # whole or absent: a process that opens the store never sees half a copy
    return db
