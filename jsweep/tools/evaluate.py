"""``jsweep eval MODEL [overrides...]``: evaluate an existing model or checkpoint without training.

MODEL is a model directory (full weights), a LoRA adapter directory (its base model is loaded
from the adapter config), or a hub id. Overrides are the usual Hydra ones (``eval=[llm_jp_eval]``,
``eval.llm_jp_eval.data_dir=...``, ``tracking.experiment=...``, ``model=llm-jp-3-1.8b`` for the
prompt format and dtype, ``eval.backend=vllm`` to generate through vLLM). One MLflow run (tag ``jsweep.kind=eval``) is logged to the experiment;
outputs go to ``<output_root>/evals/<timestamp>/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from jsweep.errors import JsweepError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model or adapter directory, or a hub id")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. 'eval=[llm_jp_eval]'")
    args = parser.parse_args(argv)

    from jsweep.compose import compose_spec, precheck_overrides
    from jsweep.eval.run import check_evaluators

    try:
        precheck_overrides(args.overrides)
        spec = compose_spec(args.overrides)
        problems = check_evaluators(spec)
        if not spec.eval:
            problems.append("no evaluator selected (eval=[...] is empty)")
        if not Path(args.model).exists() and args.model.startswith(("/", ".")):
            problems.append(f"model path not found: {args.model}")
        if problems:
            raise JsweepError("; ".join(problems))
    except JsweepError as exc:
        print(f"jsweep eval: error: {exc}", file=sys.stderr)
        return 2

    import torch

    from jsweep.eval.run import evaluate_all
    from jsweep.job.context import CellContext
    from jsweep.models.load import load_for_eval
    from jsweep.tracking import CellTracker, SweepTracker, git_commit

    out_dir = Path(spec.output_root).resolve() / "evals" / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = SweepTracker(spec.tracking.uri, spec.tracking.experiment)
    run = tracker.client.create_run(
        tracker.experiment_id,
        run_name=f"eval {args.model}",
        tags={"jsweep.kind": "eval", "jsweep.model_path": args.model, "jsweep.git_commit": git_commit()},
    )
    tracker.log_params(
        run.info.run_id, {"model": args.model, "eval": ",".join(spec.eval), "eval.backend": spec.eval_backend}
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ctx = CellContext(spec, out_dir, CellTracker(tracker.uri, run.info.run_id, out_dir), device)
    try:
        with ctx.phase("eval"):
            model, tokenizer = load_for_eval(args.model, spec, device)
            evaluate_all(ctx, model, tokenizer)
    except BaseException:
        ctx.tracker.end("FAILED")
        raise
    ctx.tracker.end("FINISHED")
    print(json.dumps({k: v for k, v in sorted(ctx.metrics.items()) if not k.startswith("time/")}, indent=2))
    print(f"jsweep eval: run {run.info.run_id} in experiment '{spec.tracking.experiment}'; outputs in {out_dir}")
    return 0
