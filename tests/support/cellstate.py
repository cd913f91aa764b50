"""The cell-state writer: cell and sweep directories as the launcher leaves them on disk (file names
from jsweep.cellstate; plain JSON, as given: no redaction), for the tests of what reads them (report, judge, grading) without running a sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsweep import cellstate

SUMMARY = "summary.json"


def write_cell(
    cell_dir: Path,
    *,
    cell: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Create ``cell_dir`` with whichever of cell.json, status.json, metrics.json and history.jsonl are given."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    for name, obj in ((cellstate.CELL, cell), (cellstate.STATUS, status), (cellstate.METRICS, metrics)):
        if obj is not None:
            (cell_dir / name).write_text(json.dumps(obj))
    if history is not None:
        (cell_dir / cellstate.HISTORY).write_text("".join(json.dumps(row) + "\n" for row in history))
    return cell_dir


def summary_row(
    index: int,
    cell_id: str,
    cell_dir: Path,
    label: str,
    metrics: dict[str, Any],
    *,
    status: str = "FINISHED",
    **extra: Any,
) -> dict[str, Any]:
    """One row of a sweep's summary.json (the launcher also writes seconds, run_id, error: pass them in extra)."""
    return {
        "index": index,
        "cell_id": cell_id,
        "label": label,
        "status": status,
        **extra,
        "log": str(cell_dir / cellstate.LOG),
        "metrics": metrics,
    }


def write_summary(
    sweep_dir: Path, rows: list[dict[str, Any]], *, sweep_id: str = "s1", parent_run_id: str | None = None
) -> Path:
    """A sweep directory with its summary.json, as the launcher writes it at the end of a sweep."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SUMMARY).write_text(json.dumps({"sweep_id": sweep_id, "parent_run_id": parent_run_id, "cells": rows}))
    return sweep_dir
