"""Evaluation orchestration: the evaluators of a cell, checked before a sweep and run on a model.

``check_evaluators`` / ``check_eval_data`` are pre-flight (no model, no torch): each selected
evaluator's own ``check`` and ``files`` hooks, and real data for real models (its ``data_hint``),
as its declaration (jsweep.eval.declaration) says. ``evaluate_all`` scores a model in memory with
every evaluator of the cell's ``eval`` section; the cell process (jsweep.job.cell) and
``jsweep eval`` (jsweep.tools.evaluate) both call it, with the cell's generation backend
(``eval.backend``: transformers, or vllm through jsweep.eval.vllm_engine) active while they run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from jsweep import registries


def evaluate_all(ctx: Any, model: Any, tokenizer: Any) -> None:
    """Run every evaluator of the cell's ``eval`` section on the model in memory; metrics go to ``ctx``."""
    from jsweep.eval.vllm_engine import backend
    from jsweep.job.context import say

    model.eval()
    if ctx.spec.eval:
        say(f"evaluation backend: {getattr(ctx.spec, 'eval_backend', 'transformers')}")
    with backend(ctx, model, tokenizer) as engine:
        for i, (name, options) in enumerate(ctx.spec.eval.items()):
            evaluator = registries.EVALUATORS.get(name).build(options)
            say(f"evaluating: {name}")
            if i == 0 and "JSWEEP_FAULT" in os.environ:  # tests: JSWEEP_FAULT=<kind>@eval (jsweep.job.faults)
                from jsweep.job.faults import at_evaluation

                at_evaluation(ctx)
            ctx.log_metrics(evaluator.evaluate(ctx, model, tokenizer))
            if engine is not None:
                engine.release()  # vLLM stopped: the next evaluator finds the model on its device


def check_evaluators(spec: Any, cache: dict[str, list[str]] | None = None) -> list[str]:
    """Each evaluator's own pre-flight check (data present, options valid), then its data files read as
    the evaluator will read them; imports no torch. ``cache``: results by options, for large grids."""
    from jsweep.eval.vllm_engine import preflight as backend_problems
    from jsweep.validate import eval_option_problems

    problems = backend_problems(spec)
    for name, options in spec.eval.items():
        if name not in registries.EVALUATORS or eval_option_problems(name, options or {}):
            continue  # reported by validate_cell
        key = json.dumps([name, options], sort_keys=True, default=str)
        if cache is not None and key in cache:
            problems.extend(cache[key])
            continue
        found: list[str] = []
        try:
            declared = registries.EVALUATORS.get(name)
            for hook in ("check", "files"):  # options and data present, then the files read in full
                fn = declared.hook(hook)
                if fn is not None and not found:
                    found.extend(f"eval.{name}: {p}" for p in fn(options))
        except Exception as exc:  # never a traceback from pre-flight
            found.append(f"eval.{name}: {type(exc).__name__}: {str(exc)[:300]}")
        if cache is not None:
            cache[key] = found
        problems.extend(found)
    return problems


def check_eval_data(spec: Any) -> list[str]:
    """A real model is never scored on the toy evaluation fixtures: each evaluator needs its data set.
    (Random-weight presets, ``model.init=random``, are throughput rigs whose scores mean nothing either way.)"""
    if spec.model.builtin or spec.model.init == "random":
        return []
    problems = []
    for name, options in spec.eval.items():
        hint = registries.EVALUATORS.get(name).data_hint if name in registries.EVALUATORS else None
        if hint is None:
            continue
        options = dict(options or {})
        configured = (
            options.get("data_dir")
            or options.get("path")
            or options.get("hub")
            or any((options.get("paths") or {}).values())
        )
        if not configured:
            key, how = hint
            problems.append(
                f"eval.{name}: model '{spec.model.name}' would be scored on the shipped toy fixtures "
                f"(a few samples per task, for the builtin tiny model only): set {key}. To prepare it: {how}; "
                f"or leave {name} out (eval=[...])"
            )
    return problems
