"""llm-jp-eval's pre-flight file check, per-cell interval and per-task report columns (no torch)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from typing import Any

from jsweep.errors import DataError
from jsweep.eval.llm_jp_eval.evaluator import evaluation_root, flat_metrics, score_predictions
from jsweep.filecheck import _text_problem


def check_files(options: dict[str, Any]) -> list[str]:
    """llm-jp-eval task files: regular files, UTF-8, each a JSON object (not an array)."""
    opts = options or {}
    try:
        root = evaluation_root(opts.get("data_dir"))
    except DataError:
        return []  # reported by the evaluator's own check
    problems = []
    for split in ("train", opts.get("split", "test")):
        for f in sorted((root / split).glob("*.json")) if (root / split).is_dir() else []:
            if problem := _text_problem(f):
                problems.append(f"{problem}")
                continue
            try:
                obj = json.loads(f.read_text(encoding="utf-8"))
            except ValueError as exc:
                problems.append(f"{f}: not valid JSON ({exc})")
                continue
            if not isinstance(obj, dict):
                problems.append(
                    f"{f}: expected a JSON object (instruction, output_length, "
                    f"metrics, samples), got a JSON {type(obj).__name__}"
                )
    return problems


def preflight(options: dict[str, Any]) -> list[str]:
    """The task files first (a file that is not text or not a JSON object is the clearest message), then the
    options and the tasks they select (jsweep.eval.llm_jp_eval.evaluator.check)."""
    from jsweep.eval.llm_jp_eval.evaluator import check

    return check_files(options) or check(options)


def bootstrap_interval(cell: Any, metric: str, resamples: int = 200, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of an llm-jp-eval score of one cell, resampling its scored samples
    within each task (predictions/llm_jp_eval.jsonl) and re-scoring them as the evaluator does."""
    if cell.cell_dir is None or resamples <= 0:
        return None
    pred_file = cell.cell_dir / "predictions" / "llm_jp_eval.jsonl"
    results = cell.cell_dir / "llm_jp_eval_results.json"
    if not pred_file.exists() or not results.exists():
        return None
    metrics_of = {t: list(m) for t, m in json.loads(results.read_text(encoding="utf-8"))["tasks"].items()}
    by_task: dict[str, list[tuple[str, str]]] = {}
    for line in pred_file.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["task"] in metrics_of:
            by_task.setdefault(row["task"], []).append((row["pred"], row["gold"]))
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        sample = {}
        for task, pairs in by_task.items():
            picked = [pairs[rng.randrange(len(pairs))] for _ in pairs]
            sample[task] = ([p for p, _ in picked], [g for _, g in picked])
        v = flat_metrics(score_predictions(sample, metrics_of)).get(metric)
        if v is not None and math.isfinite(v):
            values.append(v)
    if len(values) < max(10, resamples // 2):
        return None
    values.sort()
    return values[int(0.025 * (len(values) - 1))], values[math.ceil(0.975 * (len(values) - 1))]


def task_metrics(keys: Iterable[str]) -> list[str]:
    """The category scores (``llm_jp_eval/NLI``, ``..._partial``), not the averages."""
    return sorted(
        k
        for k in keys
        if k.startswith("llm_jp_eval/")
        and k.count("/") == 1
        and k.split("/")[1].removesuffix("_partial").isupper()
        and not k.endswith(("/AVG", "/AVG_partial"))
    )
