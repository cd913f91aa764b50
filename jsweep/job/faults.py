"""Fault injection for the fault-tolerance tests (and for trying recovery by hand).

``JSWEEP_FAULT=<kind>@<step>[:<match>]`` makes a cell fail when training reaches optimizer
step ``step``, on its first attempt only, if ``match`` is empty or a substring of the cell's
label or id (a Slurm job requeued is not a first attempt). Kinds: ``raise`` (RuntimeError), ``oom`` (torch.cuda.OutOfMemoryError, as a real
CUDA OOM raises), ``sigkill`` (the process kills itself with SIGKILL, like a preemption),
``sleep`` (stalls for up to 600 s, until the process gets SIGUSR1 or is interrupted). A kind
ending in ``*`` (``oom*@1``) fails every attempt, not only the first (to exhaust a retry limit).
``<kind>@eval`` fails at the start of evaluation instead (after the cell's first ``evaluating:``
line, with the trained model saved), so a test can kill a cell while it evaluates without timing it.
Unset in normal use: then nothing happens.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from transformers import TrainerCallback

EVAL = -1  # the step of a ``<kind>@eval`` fault: the start of evaluation, not a training step


def parse(value: str | None) -> tuple[str, int, str] | None:
    if not value:
        return None
    head, _, match = value.partition(":")
    kind, _, step = head.partition("@")
    return kind, EVAL if step == "eval" else int(step or 1), match


class FaultCallback(TrainerCallback):
    def __init__(self, ctx: Any, fault: tuple[str, int, str]):
        self.kind, self.step, self.match = fault
        every = self.kind.endswith("*")  # "oom*": every attempt, so a retry limit can be used up
        self.kind = self.kind.rstrip("*")
        # Otherwise the first attempt only: not a retry, nor a Slurm job requeued after a preemption.
        first = ctx.attempt == 1 and os.environ.get("SLURM_RESTART_COUNT", "0") == "0"
        self.armed = (every or first) and (
            not self.match or self.match in ctx.spec.label or self.match in ctx.cell_dir.name
        )
        self.woken: list[bool] = []
        if self.armed and self.kind == "sleep":
            # Installed now, not at the stall: a SIGUSR1 that comes early cancels the stall instead of
            # killing the process (SIGUSR1's default action).
            signal.signal(signal.SIGUSR1, lambda *_: self.woken.append(True))

    def on_step_end(self, args, state, control, **kwargs):
        if not self.armed or state.global_step < self.step:
            return
        self.fire(f"step {state.global_step}")

    def fire(self, where: str) -> None:
        """Fail as ``kind`` says, once; ``where``: "step N" or "evaluation"."""
        if not self.armed:
            return
        self.armed = False
        if self.kind == "raise":
            raise RuntimeError(f"injected fault at {where}")
        if self.kind == "oom":
            import torch

            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected at {where})")
        if self.kind == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.kind == "sleep":
            print(f"[jsweep] fault: stalled at {where} (SIGUSR1 resumes)", flush=True)
            deadline = time.monotonic() + 600
            while not self.woken and time.monotonic() < deadline:
                time.sleep(0.1)


def fault_callbacks(ctx: Any) -> list[TrainerCallback]:
    fault = parse(os.environ.get("JSWEEP_FAULT"))
    return [FaultCallback(ctx, fault)] if fault and fault[1] != EVAL else []


def at_evaluation(ctx: Any) -> None:
    """Where evaluation starts (jsweep.eval.run.evaluate_all): a ``<kind>@eval`` fault fires here."""
    fault = parse(os.environ.get("JSWEEP_FAULT"))
    if fault and fault[1] == EVAL:
        FaultCallback(ctx, fault).fire("evaluation")
