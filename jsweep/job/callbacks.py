"""Trainer callbacks: stream train/eval metrics to MLflow and progress lines to the console; keep
the count of trained tokens across resumed attempts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from jsweep.files import write_json
from jsweep.job.context import CellContext, say

RENAME = {
    "loss": "train/loss",
    "eval_loss": "eval/loss",
    "learning_rate": "train/lr",
    "grad_norm": "train/grad_norm",
    "mean_token_accuracy": "train/token_accuracy",
    "eval_mean_token_accuracy": "eval/token_accuracy",
    "num_tokens": "train/num_tokens",
    "rewards/margins": "train/rewards_margin",
    "rewards/accuracies": "train/rewards_accuracy",
    "rewards/chosen": "train/rewards_chosen",
    "rewards/rejected": "train/rewards_rejected",
    "eval_rewards/margins": "eval/rewards_margin",
    "eval_rewards/accuracies": "eval/rewards_accuracy",
}


class JsweepCallback(TrainerCallback):
    def __init__(self, ctx: CellContext):
        self.ctx = ctx
        self.t0 = time.monotonic()
        self.first_step = 0  # the step this attempt started at (> 0 on resume)

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.monotonic()
        self.first_step = state.global_step
        say(
            f"training: {state.max_steps} steps"
            + (f", resuming at step {state.global_step}" if state.global_step else "")
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        metrics = {RENAME[k]: v for k, v in logs.items() if k in RENAME and isinstance(v, (int, float))}
        if not metrics:
            return
        if "train/num_tokens" in metrics:  # TRL counts from 0 in each attempt
            metrics["train/num_tokens"] += self.ctx.tokens_before
        self.ctx.log_step(metrics, state.global_step)  # each (metric, step) once, over resumed attempts too
        elapsed = time.monotonic() - self.t0
        parts = [f"step {state.global_step}/{state.max_steps}"]
        for key in ("train/loss", "eval/loss", "train/lr"):
            if key in metrics:
                parts.append(f"{key.replace('/', '_')} {metrics[key]:.4g}")
        done = state.global_step - self.first_step
        if done > 0 and state.max_steps:
            eta = elapsed / done * (state.max_steps - state.global_step)
            parts.append(f"{elapsed:.0f}s elapsed, ~{eta:.0f}s left")
        say("  ".join(parts))


class TokenLedger(TrainerCallback):
    """Non-padding tokens trained so far, over every attempt: written into each checkpoint, and read
    back when a later attempt resumes from it (TRL's own count starts again at 0)."""

    FILE = "jsweep_tokens.json"

    def __init__(self, trainer: Any, before: float = 0.0):
        self.trainer, self.before = trainer, before
        self.first_step = 0  # the step this attempt started at (> 0 on resume)

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step = state.global_step

    def total(self) -> float:
        return self.before + float(getattr(self.trainer, "_total_train_tokens", 0))

    @classmethod
    def read(cls, checkpoint: Path | None) -> float:
        try:
            return float(json.loads((checkpoint / cls.FILE).read_text())["tokens"]) if checkpoint else 0.0
        except (OSError, ValueError, KeyError):
            return 0.0

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            write_json(checkpoint / self.FILE, {"tokens": self.total()})


def callbacks_for(ctx: CellContext) -> list[TrainerCallback]:
    """The trainer callbacks of a cell: metrics and progress, plus injected faults when asked."""
    from jsweep.job.faults import fault_callbacks

    return [JsweepCallback(ctx), *fault_callbacks(ctx)]
