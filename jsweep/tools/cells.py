"""A finished sweep's cells, read and updated after the sweep by ``jsweep judge`` and ``jsweep grade``:
the cells of its summary.json, a cell's cell.json, new metrics logged to a cell (metrics.json, status.json,
its MLflow run) and copied back into the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsweep import cellstate
from jsweep.eval.declaration import declarations
from jsweep.files import write_json


def _cell_meta(cell_dir: Path) -> dict[str, Any]:
    p = cell_dir / cellstate.CELL
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}


class _CellLog:
    """Logs a cell's new metrics to its metrics.json (and status.json) and to its MLflow run."""

    def __init__(self, cell_dir: Path):
        from jsweep.tracking import CellTracker

        self.cell_dir = cell_dir
        meta = _cell_meta(cell_dir)
        self.tracker = (
            CellTracker(meta["tracking_uri"], meta["run_id"], cell_dir)
            if meta.get("run_id") and meta.get("tracking_uri")
            else None
        )
        self.metrics: dict[str, float] = {}

    def __call__(self, metrics: dict[str, float]) -> None:
        self.metrics.update({k: float(v) for k, v in metrics.items()})
        path = self.cell_dir / cellstate.METRICS
        old = json.loads(path.read_text()) if path.exists() else {}
        # a re-judged evaluator's old per-item scores that were not logged again (see Declaration.judge)
        rejudged = [d.prefix for d in declarations() if d.judged and f"{d.name}/judged" in metrics]
        stale = (
            [k for k in old if k.startswith(tuple(rejudged)) and k.rsplit("/", 1)[-1] == "score" and k not in metrics]
            if rejudged
            else []
        )
        merged = {k: v for k, v in old.items() if k not in stale}
        merged.update(self.metrics)
        write_json(path, merged, sort_keys=True)
        status_path = self.cell_dir / cellstate.STATUS
        if status_path.exists():
            status = json.loads(status_path.read_text())
            if isinstance(status.get("metrics"), dict):
                status["metrics"] = {k: v for k, v in status["metrics"].items() if k not in stale} | self.metrics
                write_json(status_path, status)
        if self.tracker is not None:
            self.tracker.log_metrics(metrics)


def _sweep_cells(sweep_dir: Path) -> list[dict[str, Any]]:
    from jsweep.tools.report import axes_of

    summary = json.loads((sweep_dir / "summary.json").read_text(encoding="utf-8"))
    out = []
    for row in summary.get("cells", []):
        cell_dir = Path(row["log"]).parent
        out.append(
            {
                "cell_id": row["cell_id"],
                "cell_dir": cell_dir,
                "label": row.get("label", ""),
                "axes": axes_of(row.get("overrides") or []),
                "row": row,
            }
        )
    return out


def refresh_summary(sweep_dir: Path) -> None:
    """Copy each cell's metrics.json into the sweep's summary.json (the report reads it)."""
    path = sweep_dir / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    for row in summary.get("cells", []):
        m = Path(row["log"]).parent / cellstate.METRICS
        if m.exists():
            row["metrics"] = json.loads(m.read_text())
    write_json(path, summary, ensure_ascii=False)
