"""The llm-jp-eval samples a cell is scored on, for the contamination check (jsweep.data.contamination)."""

from __future__ import annotations

import json
from typing import Any

from jsweep.data.contamination import EvalText
from jsweep.errors import DataError
from jsweep.eval.llm_jp_eval.evaluator import DEFAULTS, evaluation_root


def collect(options: dict[str, Any] | None = None) -> list[EvalText]:
    """The texts of the llm-jp-eval samples a cell is scored on, per its ``eval.llm_jp_eval`` options:
    ``data_dir`` (null = shipped fixtures), ``split`` (test), ``tasks`` (all or a list), ``max_num_samples``
    (the first N per task; -1 = all). Each sample gives its input (and output), each task its instruction."""
    opts = {**DEFAULTS, **{k: v for k, v in (options or {}).items() if k in DEFAULTS}}
    split_dir = evaluation_root(opts["data_dir"]) / str(opts["split"])
    if opts["tasks"] in ("all", None):
        files = sorted(split_dir.glob("*.json"))
    else:
        files = [split_dir / f"{t}.json" for t in opts["tasks"]]
    limit = opts["max_num_samples"]
    out: list[EvalText] = []
    for path in files:
        if not path.exists():
            raise DataError("llm-jp-eval task file not found", file=str(path))
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno})", file=str(path)) from None
        task = path.stem
        if isinstance(obj.get("instruction"), str):
            out.append(EvalText(obj["instruction"], task=task, kind="instruction"))
        items = obj.get("samples") or []
        if limit is not None and int(limit) >= 0:
            items = items[: int(limit)]
        for i, s in enumerate(items):
            if not isinstance(s, dict):
                raise DataError("expected a {input, output} object", file=str(path), record=i, field="samples")
            for key in ("input", "output"):
                if isinstance(s.get(key), str) and s[key].strip():
                    out.append(EvalText(s[key], task=task, sample=f"{opts['split']}/{i}"))
    return out
