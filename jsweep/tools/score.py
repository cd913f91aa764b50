"""``jsweep score FILE``: re-score saved predictions with no model.

FILE holds JSON lines ``{"task": ..., "pred": ..., "gold": ...}`` (task = an llm-jp-eval task
name); jsweep's own ``predictions/llm_jp_eval.jsonl`` works as is. ``pred`` is the extracted
answer; it is NFKC-normalised and stripped again (idempotent), as is ``gold``. Each task is
scored with the metrics llm-jp-eval uses for it (``--data-dir`` reads them from the task files;
by default the metric list comes from the shipped task definitions, else the task's category).
Prints ``{"tasks": {task: {metric: value}}, "categories": {CAT: value}, "AVG": value, ...}``. As in
llm-jp-eval v1.4.1, a category and AVG are computed only when every task of the category set
(``--category-set``: ``all-without-nc``, the default, or ``all-with-nc``) was scored; otherwise the
output says ``"AVG": null`` and gives ``AVG_partial`` and ``partial_categories`` with the
``missing`` task metrics, so a partial average is never mistaken for the full one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jsweep.errors import DataError, JsweepError
from jsweep.eval.llm_jp_eval import metrics as M
from jsweep.eval.llm_jp_eval.evaluator import _read_task, evaluation_root, score_predictions

# Metrics of llm-jp-eval v1.4 tasks, for tasks absent from the data dir.
KNOWN_METRICS: dict[str, list[str]] = {
    "jsts": ["pearson", "spearman"],
    "alt-e-to-j": ["bleu_ja", "comet_wmt22"],
    "alt-j-to-e": ["bleu_en", "comet_wmt22"],
    "wikicorpus-e-to-j": ["bleu_ja", "comet_wmt22"],
    "wikicorpus-j-to-e": ["bleu_en", "comet_wmt22"],
    "mbpp": ["code_exec"],
    "xlsum_ja": ["rouge2_scaling"],
}


def metrics_for(task: str, data_dir: str | None) -> list[str]:
    try:
        root = evaluation_root(data_dir)
        for split in ("test", "dev", "train"):
            path = root / split / f"{task}.json"
            if path.exists():
                return list(_read_task(path)["metrics"])
    except DataError:
        pass
    if task in KNOWN_METRICS:
        return KNOWN_METRICS[task]
    cat = M.category_of(task)
    if cat is None:
        raise DataError(f"unknown llm-jp-eval task '{task}': pass --data-dir with its task file")
    return [{**M.CATEGORIES, **M.REPORTED_ONLY}[cat][task]]


def score_file(path: Path, data_dir: str | None = None, category_set: str = M.DEFAULT_CATEGORY_SET) -> dict:
    by_task: dict[str, tuple[list[str], list[str]]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg})", file=str(path), record=f"line {lineno}") from None
        for key in ("task", "pred", "gold"):
            if not isinstance(row.get(key), str):
                raise DataError("missing or not a string", file=str(path), record=f"line {lineno}", field=key)
        preds, golds = by_task.setdefault(row["task"], ([], []))
        preds.append(M.normalize(row["pred"]).strip())
        golds.append(M.normalize(row["gold"]))
    result = score_predictions(by_task, {t: metrics_for(t, data_dir) for t in by_task}, category_set)
    out = {
        "tasks": result["tasks"],
        "categories": result["categories"],
        "AVG": result["AVG"],
        "category_set": result["category_set"],
    }
    if result["AVG"] is None:
        out.update(
            AVG_partial=result["AVG_partial"],
            partial_categories=result["partial_categories"],
            missing=result["missing"],
        )
    if result["reported"]:
        out["reported"] = result["reported"]
    if result["skipped"]:
        out["skipped"] = result["skipped"]
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep score", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="JSON lines of {task, pred, gold}")
    parser.add_argument("--data-dir", default=None, help="llm-jp-eval data dir to read each task's metrics from")
    parser.add_argument(
        "--category-set",
        default=M.DEFAULT_CATEGORY_SET,
        choices=sorted(M.CATEGORY_SETS),
        help="llm-jp-eval v1.4.1 target whose categories make AVG (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        if not args.file.exists():
            raise DataError("file not found", file=str(args.file))
        print(json.dumps(score_file(args.file, args.data_dir, args.category_set), ensure_ascii=False, indent=2))
    except JsweepError as exc:
        print(f"jsweep score: error: {exc}", file=sys.stderr)
        return 2
    return 0
