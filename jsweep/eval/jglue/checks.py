"""JGLUE's pre-flight file check, per-cell interval and per-task report columns (no torch, no lm_eval)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsweep.errors import JsweepError
from jsweep.eval.jglue.data import read_split
from jsweep.eval.jglue.evaluator import parse_options, plan_tasks
from jsweep.filecheck import _text_problem


def check_files(options: dict[str, Any]) -> list[str]:
    """JGLUE split files read in full, by the evaluator's own reader, so a malformed record stops the sweep
    before training rather than after it."""
    planned, _ = plan_tasks(parse_options(options))
    problems = []
    for task in planned:
        files = task.files
        if files is None or files.disk is not None:
            continue
        for f in (files.valid, files.train):
            if f is None:
                continue
            if problem := _text_problem(Path(f)):
                problems.append(f"{problem}")
                continue
            try:
                read_split(task.task, f)
            except JsweepError as exc:
                problems.append(f"{exc}")
    return problems


def stderr_interval(cell: Any, metric: str, resamples: int = 0) -> tuple[float, float] | None:
    """95% interval of a JGLUE score from the harness's own standard errors (``..._stderr``); for
    jglue/AVG, the errors of its tasks combined as independent."""
    value = cell.metrics.get(metric)
    if value is None:
        return None
    if metric == "jglue/AVG":
        parts = [k for k in cell.metrics if k.startswith("jglue/") and k.count("/") == 2 and "stderr" not in k]
        ses = [cell.metrics.get(k + "_stderr") for k in parts]
        if not parts or any(se is None for se in ses):
            return None
        se = math.sqrt(sum(x * x for x in ses)) / len(parts)
    else:
        se = cell.metrics.get(metric + "_stderr")
        if se is None:
            return None
    return value - 1.96 * se, value + 1.96 * se


def task_metrics(keys: Iterable[str]) -> list[str]:
    """The task metrics (``jglue/<task>/<metric>``), not the average or standard errors."""
    return sorted(k for k in keys if k.startswith("jglue/") and k.count("/") == 2 and "stderr" not in k)
