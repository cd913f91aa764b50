"""``jsweep prepare llm-jp-eval --jglue DIR [--out DIR]``: raw JGLUE -> llm-jp-eval evaluation data.

The conversion lives with the evaluator (jsweep.eval.llm_jp_eval.prepare, whose docstring says how
it follows llm-jp-eval's own preprocessing); this is its command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jsweep.errors import DataError, JsweepError
from jsweep.eval.llm_jp_eval.prepare import TASKS, prepare_jglue


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["llm-jp-eval"], help="what to prepare")
    parser.add_argument("--jglue", type=Path, required=True, help="directory of raw JGLUE v1.3 (jnli/, jsquad/, ...)")
    parser.add_argument("--out", type=Path, default=Path("data/llm-jp-eval"), help="output directory")
    parser.add_argument("--tasks", nargs="*", default=None, help="subset of: " + ", ".join(TASKS))
    parser.add_argument(
        "--allow-missing-train",
        action="store_true",
        help="for tasks without a JGLUE train file, take few-shot examples from 10%% of valid "
        "(the test set shrinks; recorded in prepare_report.json)",
    )
    args = parser.parse_args(argv)
    try:
        if not args.jglue.is_dir():
            raise DataError("JGLUE directory not found", file=str(args.jglue))
        report = prepare_jglue(args.jglue, args.out, args.tasks, args.allow_missing_train)
    except JsweepError as exc:
        print(f"jsweep prepare: error: {exc}", file=sys.stderr)
        return 2
    for task, info in report.items():
        print(
            f"{task:16} "
            + (
                info.get("skipped")
                or f"train {info['train']:5}  dev {info['dev']:4}  test {info['test']:5}  ({info['note']})"
            )
        )
    print(f"wrote {args.out / 'evaluation'}; use it with eval.llm_jp_eval.data_dir={args.out}")
    return 0
