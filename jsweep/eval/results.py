"""One way to keep an evaluator's results: the per-sample predictions and the scores, on disk and in MLflow.

:func:`log_results` writes ``<cell>/predictions/<name>.jsonl`` (one row per scored sample, with its
task) and ``<cell>/<name>_results.json`` (the evaluator's summary), then logs one table per task
(``<name>/<table_dir>/<task>.json``) and the predictions file as an artifact (unless
``tracking.log_predictions`` is false), the evaluator's resolved configuration
(``<name>/<config_file>``) and its run tags. Pure Python (no torch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def log_results(
    ctx: Any,
    name: str,
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    tags: Mapping[str, Any],
    config_file: str = "config.json",
    table_dir: str = "predictions",
    columns: Sequence[str] | None = None,
) -> Path:
    """Write and log one evaluator's results (see the module docstring); ``rows``: task -> its sample rows,
    ``columns``: the row fields its tables show (all when None). Returns the predictions file."""
    cell_dir = Path(ctx.cell_dir)
    pred_dir = cell_dir / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    pred_file = pred_dir / f"{name}.jsonl"
    with open(pred_file, "w", encoding="utf-8") as f:
        for task, task_rows in rows.items():
            for row in task_rows:
                f.write(json.dumps({"task": task, **row}, ensure_ascii=False, default=str) + "\n")
    (cell_dir / f"{name}_results.json").write_text(json.dumps(dict(results), indent=2, ensure_ascii=False, default=str))
    tracker = ctx.tracker
    tracking = getattr(getattr(ctx, "spec", None), "tracking", None)
    if getattr(tracking, "log_predictions", True):
        for task, task_rows in rows.items():
            table = [{k: r[k] for k in columns} for r in task_rows] if columns is not None else list(task_rows)
            tracker.log_table(table, f"{name}/{table_dir}/{task}.json")
        tracker.log_artifact(pred_file, name)
    tracker.log_dict(dict(config), f"{name}/{config_file}")
    tracker.set_tags(dict(tags))
    return pred_file
