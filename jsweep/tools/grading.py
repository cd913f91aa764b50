"""``jsweep grade export|import``: human grading of the cells' answers to a question set.

    python -m jsweep grade export [SWEEP] [--out sheet.csv] [--seed 0]
    python -m jsweep grade import [SWEEP] FILLED.csv
    python -m jsweep grade answers [SWEEP] [--cells ID,...] [eval.human_eval.path=...]

``answers`` is for cells that were trained without ``eval=[...,human_eval]``: it loads each chosen
finished cell's saved model, answers the question set (as the evaluator would) and exports the sheet.

``export`` collects every cell's ``human_eval`` answers (``eval=[...,human_eval]``), shuffles
them (seeded) and writes a **blinded** sheet: item id, question, reference answer, answer, and
empty ``grade`` and ``comment`` columns; no cell, model or dataset is named. It is CSV in UTF-8
with a byte-order mark, so Excel and other spreadsheets open the Japanese text correctly. The
key (item -> cell and question, plus a digest of each answer) stays beside the sweep in
``<sweep>/grading/key.json``; graders only see the sheet.

``import`` reads the filled sheet back (UTF-8, with or without BOM, or Shift_JIS/cp932 as
Japanese Excel saves "CSV"), checks every row, and maps the grades to cells through the key.
Grades: ``1`` / ``0`` (also ``○`` / ``×``, ``正解`` / ``不正解``), or a fraction in [0, 1] for
partial credit. Any problem (an unknown or repeated item, a missing or invalid grade, an
answer that is not the exported one, items missing from the sheet) is reported with the
sheet's row number, and nothing is imported. Accuracy per cell (the mean grade) is logged as
``human_eval/accuracy`` (and ``human_eval/graded``) to each cell's MLflow run, its
``metrics.json``, the sweep summary and report; per-item grades go to ``<sweep>/grading/``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from jsweep import cellstate
from jsweep.errors import JsweepError
from jsweep.files import write_json

NAME = "human_eval"
COLUMNS = ["item", "question", "reference", "answer", "grade", "comment"]
GRADES = {
    "1": 1.0,
    "0": 0.0,
    "○": 1.0,
    "◯": 1.0,
    "〇": 1.0,
    "o": 1.0,
    "×": 0.0,
    "✕": 0.0,
    "x": 0.0,
    "正解": 1.0,
    "不正解": 0.0,
    "correct": 1.0,
    "incorrect": 0.0,
}


class GradingError(JsweepError):
    """A malformed or incomplete grading sheet, or nothing to grade."""


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in str(text).replace("\r\n", "\n").replace("\r", "\n").strip().split("\n"))


def answer_digest(text: str) -> str:
    return hashlib.sha256(_norm(text).encode("utf-8")).hexdigest()[:16]


def grading_dir(sweep_dir: Path) -> Path:
    return sweep_dir / "grading"


def export(sweep_dir: Path, out: Path | None = None, seed: int = 0) -> tuple[Path, Path, int]:
    from jsweep.eval.answers import read_jsonl
    from jsweep.tools.cells import _sweep_cells

    rows = []
    cells = {}
    for cell in _sweep_cells(sweep_dir):
        answers = read_jsonl(Path(cell["cell_dir"]) / NAME / "answers.jsonl")
        if answers:
            cells[cell["cell_id"]] = cell["label"]
            rows += [(cell["cell_id"], a) for a in answers]
    if not rows:
        raise GradingError(f"no cell of {sweep_dir} has {NAME} answers (run the sweep with eval=[...,{NAME}])")
    random.Random(seed).shuffle(rows)
    width = max(3, len(str(len(rows))))
    gdir = grading_dir(sweep_dir)
    gdir.mkdir(exist_ok=True)
    sheet = Path(out) if out else gdir / "sheet.csv"
    key: dict[str, Any] = {
        "sheet": str(sheet.resolve()),
        "created": time.time(),
        "seed": seed,
        "cells": cells,
        "items": {},
    }
    with open(sheet, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i, (cell_id, a) in enumerate(rows, 1):
            item = f"G{i:0{width}d}"
            key["items"][item] = {
                "cell_id": cell_id,
                "question_id": a["id"],
                "answer_digest": answer_digest(a["answer"]),
            }
            w.writerow([item, a["question"], a.get("reference", ""), a["answer"], "", ""])
    key_path = gdir / "key.json"
    write_json(key_path, key, ensure_ascii=False)
    return sheet, key_path, len(rows)


def _read_sheet(path: Path) -> list[dict[str, str]]:
    raw = Path(path).read_bytes()
    for enc in ("utf-8-sig", "cp932"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise GradingError(f"{path}: not UTF-8 or Shift_JIS text; save the sheet as CSV (UTF-8)")
    import io

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise GradingError(f"{path}: the sheet is empty") from None
    missing = [c for c in ("item", "grade") if c not in header]
    if missing:
        raise GradingError(
            f"{path}: row 1 (header): missing column(s) {', '.join(missing)} (have: {', '.join(header)})"
        )
    out = []
    for number, values in enumerate(reader, 2):  # spreadsheet row numbers: the header is row 1
        if not any(v.strip() for v in values):
            continue
        row = dict(zip(header, values))
        row["_row"] = str(number)
        out.append(row)
    return out


def parse_grade(value: str) -> float | None:
    v = str(value).strip().lower()
    if v in GRADES:
        return GRADES[v]
    try:
        x = float(v)
    except ValueError:
        return None
    return x if 0.0 <= x <= 1.0 else None


def import_grades(sweep_dir: Path, sheet: Path) -> dict[str, Any]:
    """Check the filled sheet and compute accuracy per cell (raises GradingError naming rows)."""
    key_path = grading_dir(sweep_dir) / "key.json"
    if not key_path.exists():
        raise GradingError(f"no grading key at {key_path}: export the sheet first (jsweep grade export {sweep_dir})")
    key = json.loads(key_path.read_text(encoding="utf-8"))
    rows = _read_sheet(sheet)
    errors: list[str] = []
    seen: dict[str, str] = {}
    grades: dict[str, float] = {}
    for row in rows:
        where = f"row {row['_row']}"
        item = row.get("item", "").strip()
        if item not in key["items"]:
            errors.append(f"{where}: unknown item '{item}' (not in this sweep's key)")
            continue
        if item in seen:
            errors.append(f"{where}: item {item} appears again (first at row {seen[item]})")
            continue
        seen[item] = row["_row"]
        if "answer" in row and answer_digest(row["answer"]) != key["items"][item]["answer_digest"]:
            errors.append(f"{where}: the answer of item {item} is not the exported one (rows mixed up or edited?)")
            continue
        raw = row.get("grade", "").strip()
        if not raw:
            errors.append(f"{where}: item {item} has no grade")
            continue
        g = parse_grade(raw)
        if g is None:
            errors.append(f"{where}: item {item}: grade '{raw}' is not 1/0, ○/×, 正解/不正解 or a number in [0, 1]")
            continue
        grades[item] = g
    absent = [i for i in key["items"] if i not in seen]
    if absent:
        errors.append(
            f"{len(absent)} item(s) missing from the sheet: {', '.join(absent[:5])}"
            + (" ..." if len(absent) > 5 else "")
        )
    if errors:
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise GradingError(f"{sheet}: {len(errors)} problem(s), nothing imported: " + "; ".join(errors[:10]) + more)
    per_cell: dict[str, list[float]] = {}
    items = []
    for item, g in grades.items():
        k = key["items"][item]
        per_cell.setdefault(k["cell_id"], []).append(g)
        items.append({"item": item, **k, "grade": g})
    cells = {
        cid: {"label": key["cells"].get(cid, ""), "accuracy": sum(v) / len(v), "graded": len(v)}
        for cid, v in per_cell.items()
    }
    return {"sheet": str(sheet), "cells": cells, "items": items}


def log_grades(sweep_dir: Path, result: dict[str, Any]) -> None:
    from jsweep.eval.answers import write_jsonl
    from jsweep.tools.cells import _cell_meta, _CellLog, _sweep_cells, refresh_summary
    from jsweep.tracking import CellTracker

    gdir = grading_dir(sweep_dir)
    write_json(gdir / "results.json", {k: result[k] for k in ("sheet", "cells")}, ensure_ascii=False)
    write_jsonl(gdir / "grades.jsonl", result["items"])
    dirs = {c["cell_id"]: Path(c["cell_dir"]) for c in _sweep_cells(sweep_dir)}
    for cid, r in result["cells"].items():
        if cid in dirs:
            _CellLog(dirs[cid])({f"{NAME}/accuracy": r["accuracy"], f"{NAME}/graded": r["graded"]})
    refresh_summary(sweep_dir)
    summary = json.loads((sweep_dir / "summary.json").read_text(encoding="utf-8"))
    meta = _cell_meta(next(iter(dirs.values()))) if dirs else {}
    if summary.get("parent_run_id") and meta.get("tracking_uri"):
        tracker = CellTracker(meta["tracking_uri"], summary["parent_run_id"], sweep_dir)
        tracker.log_table([{"cell_id": cid, **r} for cid, r in result["cells"].items()], f"{NAME}/grading.json")
        tracker.log_artifact(gdir / "results.json", NAME)


def generate_answers(sweep_dir: Path, overrides: list[str], cells: list[str] | None = None, say: Any = print) -> int:
    """Answer the question set with the saved model of every finished cell of the sweep (or of the
    cells whose id starts with one of ``cells``), for cells that ran without ``human_eval``.
    ``overrides`` are ``eval.human_eval.*`` settings. Returns the number of cells answered."""
    from jsweep.compose import compose_spec, precheck_overrides
    from jsweep.eval.samples import HumanEval
    from jsweep.schema import cell_from_dict
    from jsweep.tools.cells import _cell_meta, _sweep_cells, refresh_summary

    bad = [o for o in overrides if not o.startswith(f"eval.{NAME}.")]
    if bad:
        raise GradingError(f"expected eval.{NAME}.KEY=VALUE, got {bad[0]!r}")
    precheck_overrides([f"eval=[{NAME}]", *overrides])
    opts = compose_spec([f"eval=[{NAME}]", *overrides]).eval[NAME]
    problems = HumanEval.check(opts)
    if problems:
        raise GradingError("; ".join(problems))
    chosen = [
        c
        for c in _sweep_cells(sweep_dir)
        if c["row"].get("status") in ("FINISHED", "SKIPPED")
        and (not cells or any(c["cell_id"].startswith(p) for p in cells))
    ]
    if not chosen:
        raise GradingError(f"no finished cell of {sweep_dir} matches" + (f" {', '.join(cells)}" if cells else ""))
    missing = [c["cell_id"] for c in chosen if not (Path(c["cell_dir"]) / "model").is_dir()]
    if missing:
        raise GradingError(f"cell(s) {', '.join(m[:8] for m in missing)} kept no model (train.save_model=false)")
    import torch

    from jsweep.job.context import CellContext
    from jsweep.models.load import load_for_eval
    from jsweep.tracking import CellTracker, NullTracker

    device = "cuda" if torch.cuda.is_available() else "cpu"
    for c in chosen:
        cell_dir = Path(c["cell_dir"])
        meta = _cell_meta(cell_dir)
        spec = cell_from_dict(meta["spec"])
        tracker = CellTracker(meta["tracking_uri"], meta["run_id"], cell_dir) if meta.get("run_id") else NullTracker()
        ctx = CellContext(spec, cell_dir, tracker, device)
        if (cell_dir / cellstate.METRICS).exists():
            ctx.metrics = json.loads((cell_dir / cellstate.METRICS).read_text())
        say(f"{c['cell_id'][:8]} {c['label']}: answering the question set with {cell_dir / 'model'}")
        model, tokenizer = load_for_eval(str(cell_dir / "model"), spec, device)
        model.eval()
        ctx.log_metrics(HumanEval(opts).evaluate(ctx, model, tokenizer))
        del model
    refresh_summary(sweep_dir)
    return len(chosen)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep grade", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write the blinded, shuffled sheet for graders")
    ex.add_argument("sweep", nargs="?", type=Path, default=Path("outputs"), help="sweep dir or output root")
    ex.add_argument("--out", type=Path, help="sheet path (default: <sweep>/grading/sheet.csv)")
    ex.add_argument("--seed", type=int, default=0, help="shuffle seed")
    an = sub.add_parser("answers", help="answer the question set with finished cells' saved models")
    an.add_argument("args", nargs="*", help="[SWEEP] [eval.human_eval.KEY=VALUE ...]")
    an.add_argument("--cells", default="", help="comma-separated cell-id prefixes (default: every finished cell)")
    im = sub.add_parser("import", help="read the filled sheet, log accuracy per cell")
    im.add_argument("args", nargs="+", help="[SWEEP] FILLED.csv")
    args = parser.parse_args(argv)
    from jsweep.tools.report import find_sweep, write_report

    try:
        if args.cmd == "answers":
            paths = [a for a in args.args if "=" not in a]
            sweep_dir = find_sweep(Path(paths[0]) if paths else Path("outputs"))
            n = generate_answers(
                sweep_dir, [a for a in args.args if "=" in a], [p for p in args.cells.split(",") if p] or None
            )
            sheet, key, total = export(sweep_dir)
            print(
                f"jsweep grade: {n} cell(s) answered; sheet ({total} answers, blinded and shuffled): {sheet}\n"
                f"  key (keep it from graders): {key}"
            )
            return 0
        if args.cmd == "export":
            sweep_dir = find_sweep(args.sweep)
            sheet, key, n = export(sweep_dir, args.out, args.seed)
            print(
                f"jsweep grade: {n} answers, shuffled and blinded -> {sheet}\n  key (keep it from graders): {key}\n"
                f"  graders fill the grade column with 1 (correct) or 0 (incorrect); then: "
                f"python -m jsweep grade import {sweep_dir} {sheet}"
            )
            return 0
        sweep_dir = find_sweep(Path(args.args[0]) if len(args.args) > 1 else Path("outputs"))
        result = import_grades(sweep_dir, Path(args.args[-1]))
        log_grades(sweep_dir, result)
        for cid, r in sorted(result["cells"].items(), key=lambda kv: -kv[1]["accuracy"]):
            print(f"  {cid[:8]}  accuracy {r['accuracy']:.3f} ({r['graded']} graded)  {r['label']}")
        write_report(sweep_dir)
        print(f"jsweep grade: imported {len(result['items'])} grades; report updated in {sweep_dir / 'report'}")
        return 0
    except JsweepError as exc:
        print(f"jsweep grade: error: {exc}", file=sys.stderr)
        return 2
