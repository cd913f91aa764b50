"""Command line: ``jsweep [-m] [overrides...]`` runs cells; ``jsweep <tool> ...`` runs a tool.

Overrides are checked before Hydra runs, so an unknown option, key or a bad lr gets one line
and a non-zero exit, and nothing is created (no MLflow run, no training).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

TOOLS: dict[str, str] = {
    # name: "module:function" taking argv (list[str]) and returning an exit code
    "score": "jsweep.tools.score:main",
    "prepare": "jsweep.tools.prepare:main",
    "eval": "jsweep.tools.evaluate:main",
    "sync": "jsweep.tools.sync:main",
    "report": "jsweep.tools.report:main",
    "judge": "jsweep.tools.judge:main",
    "grade": "jsweep.tools.grading:main",
    "ui-check": "jsweep.tools.ui_check:main",
}


def _hydra_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split argv into Hydra's own flags and overrides (key=value)."""
    flags, overrides = [], []
    takes_value = {
        "--config-path",
        "-cp",
        "--config-name",
        "-cn",
        "--config-dir",
        "-cd",
        "--info",
        "-i",
        "--experimental-rerun",
    }
    it = iter(argv)
    for arg in it:
        if arg.startswith("-"):
            flags.append(arg)
            if arg in takes_value:
                nxt = next(it, None)
                if nxt is not None:
                    flags.append(nxt)
        else:
            overrides.append(arg)
    return flags, overrides


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        import importlib

        module, _, func = TOOLS[argv[0]].partition(":")
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)

    from jsweep.compose import list_settings, precheck_overrides
    from jsweep.errors import JsweepError

    if "--rerun" in argv:  # jsweep's own flag: run finished cells again (their old results are kept)
        argv = [a for a in argv if a != "--rerun"] + ["launcher.rerun=true"]
    argv = list_settings(argv)
    flags, overrides = _hydra_flags(argv)
    if not any(f in ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c") for f in flags):
        try:
            precheck_overrides(overrides)
        except JsweepError as exc:
            print(f"jsweep: error: {exc}", file=sys.stderr)
            return 2
    from jsweep.app import run_hydra

    return run_hydra(argv)


if __name__ == "__main__":
    sys.exit(main())
