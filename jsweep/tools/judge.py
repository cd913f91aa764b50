"""``jsweep judge [PATH ...] [judge=NAME] [judge.KEY=VALUE ...] [--pairwise A B --by AXIS]``.

Completes the judgments a judge outage (or ``judge.defer=true``) left missing, or judges saved
answers again with another judge, without generating anything: PATH is a sweep directory
(``outputs/sweeps/<time>``), a cell directory (``outputs/cells/<id>``), a ``jsweep eval`` output
directory, or an output root (its newest sweep); default ``outputs``. The judge is each cell's own (``judge`` in its
``cell.json``) unless ``judge=NAME`` (conf/judge/NAME.yaml) or ``judge.KEY=VALUE`` override it.

Judgments already in a cell's ``judgments.jsonl`` for the same (judge, prompt) are not asked
again. Metrics go to the cell's ``metrics.json`` and its MLflow run (journaled for
``jsweep sync`` when the tracking server is down); for a sweep, its ``summary.json`` and report
are brought up to date, and the pairwise comparison (``judge.pairwise`` or ``--pairwise``) is run
and logged to the sweep's parent run. Exit code 1 while judgments are still missing.

The sweep launcher calls :func:`after_sweep` before writing its report, so re-running a sweep
also completes what is missing (for the cells it skipped as finished too); it also runs the
pairwise comparison and writes the blinded grading sheet of ``human_eval`` answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from jsweep import cellstate
from jsweep.errors import JsweepError
from jsweep.files import write_json
from jsweep.tools.cells import _cell_meta, _CellLog, _sweep_cells, refresh_summary


def judged_evaluators() -> list[str]:
    """The evaluators scored by the LLM judge (their declarations say ``judged``)."""
    from jsweep.eval.declaration import declarations

    return [d.name for d in declarations() if d.judged]


def _judge_conf(name: str) -> dict[str, Any]:
    from jsweep.paths import CONF_DIR

    path = CONF_DIR / "judge" / f"{name}.yaml"
    if not path.exists():
        have = ", ".join(sorted(p.stem for p in (CONF_DIR / "judge").glob("*.yaml")))
        raise JsweepError(f"unknown judge '{name}' (choose from: {have})")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def apply_overrides(base: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``judge=NAME`` replaces the config with conf/judge/NAME.yaml; ``judge.KEY=VALUE`` sets one key."""
    from jsweep.eval import judge as J

    out = dict(base)
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if not sep:
            raise JsweepError(f"expected judge=NAME or judge.KEY=VALUE, got {ov!r}")
        if key == "judge":
            out = _judge_conf(value)
        elif key.startswith("judge."):
            k = key[len("judge.") :]
            if k not in J.DEFAULTS:
                raise JsweepError(f"unknown key '{key}' (valid keys: {', '.join(sorted(J.DEFAULTS))})")
            out[k] = yaml.safe_load(value) if value else None
        else:
            raise JsweepError(f"expected judge=NAME or judge.KEY=VALUE, got {ov!r}")
    return out


def judge_cells(
    cells: list[tuple[Path, dict[str, Any]]], say: Callable[[str], None] = print, only_missing: bool = False
) -> dict[str, Any]:
    """Judge the saved answers of each (cell_dir, judge options); returns {cell_dir: metrics} and pending."""
    from jsweep.eval import judge as J
    from jsweep.eval.declaration import declarations

    done: dict[str, dict[str, float]] = {}
    pending = 0
    for cell_dir, opts in cells:
        for decl in (d for d in declarations() if d.judged):
            name = decl.name
            if not (cell_dir / name / "answers.jsonl").exists():
                continue
            if only_missing:
                res_path = cell_dir / name / "results.json"
                res = json.loads(res_path.read_text()) if res_path.exists() else {}
                from jsweep.eval.judge_prompts import PROMPTS, digest

                full = J.options(opts)
                if (
                    res.get("judge_digest") == digest(J.identity(full))
                    and not res.get("metrics", {}).get(f"{name}/pending")
                    and res.get("judge_prompt_digest") == PROMPTS[full["prompt"]].digest
                ):
                    continue
            log = _CellLog(cell_dir)
            metrics = decl.required_hook("judge")(cell_dir, opts, log_metrics=log, tracker=log.tracker, say=say)
            done[str(cell_dir)] = metrics
            pending += int(metrics.get(f"{name}/pending", 0))
    return {"cells": done, "pending": pending}


def run_pairwise(
    sweep_dir: Path, cfg: dict[str, Any], judge_opts: dict[str, Any], say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Compare cells of a sweep pairwise; write ``<sweep>/pairwise/``; log to the parent run."""
    from jsweep.eval import pairwise as P
    from jsweep.eval.answers import write_jsonl
    from jsweep.tracking import CellTracker

    opts = P.options(cfg)
    if opts is None:
        raise JsweepError("pairwise comparison: no judge.pairwise settings (a, b)")
    cells = _sweep_cells(sweep_dir)
    result = P.compare(cells, opts, judge_opts, say=say)
    out = sweep_dir / "pairwise"
    out.mkdir(exist_ok=True)
    write_json(
        out / "results.json", {"config": opts, "judge": result["judge"], "groups": result["groups"]}, ensure_ascii=False
    )
    write_jsonl(out / "items.jsonl", result["items"])
    for g in result["groups"]:
        if "win_rate" in g:
            say(
                f"pairwise {g['a']} vs {g['b']}{' (' + g['group'] + ')' if g['group'] else ''}: win rate "
                f"{g['win_rate']:.3f} [{g['ci_low']:.3f}, {g['ci_high']:.3f}] over {g['n']} "
                f"(W/T/L {g['wins']}/{g['ties']}/{g['losses']})"
            )
    summary = json.loads((sweep_dir / "summary.json").read_text(encoding="utf-8"))
    parent = summary.get("parent_run_id")
    meta = _cell_meta(cells[0]["cell_dir"]) if cells else {}
    if parent and meta.get("tracking_uri"):
        tracker = CellTracker(meta["tracking_uri"], parent, sweep_dir)
        tracker.log_metrics(P.metrics_of(result))
        tracker.log_table(
            [
                {
                    k: g.get(k)
                    for k in (
                        "a",
                        "b",
                        "group",
                        "n",
                        "win_rate",
                        "ci_low",
                        "ci_high",
                        "wins",
                        "ties",
                        "losses",
                        "unparseable",
                        "pending",
                        "consistent",
                        "judge_model",
                        "judge_prompt_digest",
                    )
                }
                for g in result["groups"]
            ],
            "pairwise/results.json",
        )
        tracker.set_tags(
            {
                "jsweep.pairwise": f"{cfg['a']} vs {cfg['b']}",
                "jsweep.pairwise.judge_model": judge_opts.get("model", ""),
                "jsweep.pairwise.prompt_digest": result["groups"][0].get("judge_prompt_digest", "")
                if result["groups"]
                else "",
            }
        )
    return result


def after_sweep(sweep_dir: Path, cells: list[Any], say: Callable[[str], None] = print) -> None:
    """Called by the launcher before its report: judge what is missing with this sweep's judge, then
    run the pairwise comparison when ``judge.pairwise`` is set. Never raises (the results are safe)."""
    from jsweep.eval import judge as J

    try:
        todo = [
            (c.cell_dir, J.options(c.spec.judge))
            for c in cells
            if not c.spec.judge.defer
            and any(name in c.spec.eval for name in judged_evaluators())
            and (c.cell_dir / cellstate.STATUS).exists()
        ]
        if todo:
            res = judge_cells(todo, say=say, only_missing=True)
            if res["cells"]:
                refresh_summary(sweep_dir)
        judged = next((c for c in cells if c.spec.judge.pairwise and not c.spec.judge.defer), None)
        if judged is not None:
            from jsweep.eval.pairwise import options as pairwise_options

            cfg = pairwise_options(judged.spec.judge.pairwise)
            assert cfg is not None  # judge.pairwise is set
            if any(cfg["evaluator"] in c.spec.eval for c in cells):
                run_pairwise(sweep_dir, cfg, J.options(judged.spec.judge), say)
            else:
                say(f"jsweep: pairwise comparison skipped: no cell runs {cfg['evaluator']}")
    except Exception as exc:  # answers and judgments so far are kept; `jsweep judge` retries
        say(
            f"jsweep: warning: judging after the sweep stopped ({type(exc).__name__}: {exc}); "
            f"run `python -m jsweep judge {sweep_dir}` to finish it"
        )
    from jsweep.eval.declaration import declarations

    graded = [d.name for d in declarations() if d.graded]  # answers graded by people: export a sheet
    if any(name in c.spec.eval for c in cells for name in graded):
        from jsweep.tools.grading import GradingError, export, grading_dir

        try:
            if not (grading_dir(sweep_dir) / "key.json").exists():
                sheet, _, n = export(sweep_dir)
                say(
                    f"jsweep: grading sheet ({n} answers, blinded and shuffled): {sheet}; fill its grade column, "
                    f"then `python -m jsweep grade import {sweep_dir} {sheet}`"
                )
        except (GradingError, OSError) as exc:
            say(f"jsweep: warning: no grading sheet ({exc})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep judge", description=__doc__.split("\n\n")[0])
    parser.add_argument("args", nargs="*", help="sweep dirs, cell dirs or an output root; judge=NAME, judge.KEY=VALUE")
    parser.add_argument(
        "--pairwise",
        nargs=2,
        metavar=("A", "B"),
        help="compare cells A against B, e.g. dataset=synthetic dataset=oasst",
    )
    parser.add_argument("--by", action="append", default=[], help="one comparison per value of this axis (repeatable)")
    args = parser.parse_args(argv)
    overrides = [a for a in args.args if a.startswith("judge")]
    paths = [Path(a) for a in args.args if not a.startswith("judge")] or [Path("outputs")]
    from jsweep.eval import judge as J
    from jsweep.tools.report import ReportError, find_sweep, write_report

    pending = 0
    try:
        for path in paths:
            if (path / cellstate.CELL).exists() or any(
                (path / n / "answers.jsonl").exists() for n in judged_evaluators()
            ):
                sweep_dir, cell_dirs = None, [path]
            else:
                sweep_dir = find_sweep(path)
                cell_dirs = [c["cell_dir"] for c in _sweep_cells(sweep_dir)]
            todo = []
            for d in cell_dirs:
                spec_judge = _cell_meta(d).get("spec", {}).get("judge") or {}
                opts = J.options(apply_overrides(spec_judge, overrides))
                problems = J.check(opts)
                if problems:
                    raise JsweepError("; ".join(problems))
                todo.append((d, opts))
            res = judge_cells(todo)
            pending += res["pending"]
            if sweep_dir is not None:
                refresh_summary(sweep_dir)
                cfg = (
                    {"a": args.pairwise[0], "b": args.pairwise[1], "by": args.by}
                    if args.pairwise
                    else (todo[0][1].get("pairwise") if todo else None)
                )
                if cfg:
                    result = run_pairwise(
                        sweep_dir, cfg, todo[0][1] if todo else J.options(apply_overrides({}, overrides))
                    )
                    pending += sum(g.get("pending", 0) for g in result["groups"])
                try:
                    out, _ = write_report(sweep_dir)
                    print(f"jsweep judge: report updated: {out / 'report.md'}")
                except ReportError as exc:
                    print(f"jsweep judge: warning: no report ({exc})", file=sys.stderr)
    except JsweepError as exc:
        print(f"jsweep judge: error: {exc}", file=sys.stderr)
        return 2
    if pending:
        print(
            f"jsweep judge: {pending} judgment(s) still missing; run it again once the judge is reachable",
            file=sys.stderr,
        )
        return 1
    return 0
