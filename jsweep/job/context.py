"""What a cell's stages share: the spec, its directory, the tracker, device and timings."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsweep import cellstate
from jsweep.data.records import Record
from jsweep.files import write_json
from jsweep.schema import CellSpec
from jsweep.tracking import Tracker


def say(msg: str) -> None:
    """A progress line; the launcher echoes lines starting with [jsweep] to the console. In a
    multi-process cell the other ranks' lines go to cell.log only, tagged with their rank, so the
    console does not repeat every line once per GPU."""
    rank = os.environ.get("RANK", "0")
    # One write of the whole line: print() writes the text and its newline separately, and another
    # rank's output, on the same pipe, could land between them.
    line = f"[jsweep] {msg}\n" if rank == "0" else f"[rank {rank}] {msg}\n"
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except BrokenPipeError:  # the launcher is gone: go on, writing into cell.log directly
        if not _orphan_log:
            raise
        write_to_log(_orphan_log[0])
        sys.stdout.write(line)
        sys.stdout.flush()


_orphan_log: list[Path] = []


def write_to_log(log: Path) -> None:
    """Point this process's stdout and stderr at ``log`` (appending), redacted: its launcher, which
    reads its output into cell.log, is gone, and the cell carries on without it."""
    from jsweep.redaction import RedactingStream

    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)
    stdout = getattr(sys.stdout, "_stream", sys.stdout)
    stderr = getattr(sys.stderr, "_stream", sys.stderr)
    sys.stdout, sys.stderr = RedactingStream(stdout), RedactingStream(stderr)


def follow_launcher(log: Path) -> None:
    """If the launcher dies while this cell runs (its parent changes), move the cell's output into
    ``log`` so that the cell finishes on its own instead of dying of a broken pipe."""
    import threading

    parent = os.getppid()
    _orphan_log[:] = [log]

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        write_to_log(log)
        print(f"[jsweep] the launcher (pid {parent}) is gone; this cell goes on and writes here", flush=True)

    threading.Thread(target=watch, daemon=True, name="jsweep-follow-launcher").start()


@dataclass
class CellContext:
    spec: CellSpec
    cell_dir: Path
    tracker: Tracker  # CellTracker; NullTracker on ranks > 0
    device: str  # "cuda" or "cpu"
    train: list[Record] = field(default_factory=list)  # Examples, or PreferenceExamples for DPO
    held_out: list[Record] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    attempt: int = 1  # 2+ when the launcher retries the cell (e.g. after OOM)
    resume_from: Path | None = None  # checkpoint to resume training from
    tokens_before: float = 0.0  # tokens trained by earlier attempts (read from resume_from)
    rank: int = 0  # this process's rank in a multi-GPU cell
    world_size: int = 1  # training processes of the cell
    deepspeed_config: Path | None = None  # the cell's DeepSpeed config (ZeRO cells)
    n_params: int = 0  # parameters of the full model (for MFU)
    keep_alive: Any = None  # objects that must live as long as the cell (HfDeepSpeedConfig)
    prior_metrics: dict[str, float] = field(default_factory=dict)  # the train stage's metrics (eval stage)
    logged: set[tuple[str, int]] = field(default_factory=set)  # (metric, step) already in this run

    def load_logged(self) -> None:
        """The (metric, step) pairs earlier attempts of this run logged (from history.jsonl): a resumed
        attempt re-trains the steps after its checkpoint, and logs none of them twice."""
        path = self.cell_dir / "history.jsonl"
        if not path.exists():
            return
        for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
                step = int(row["step"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
            self.logged.update((k, step) for k in row if k not in ("step", "attempt"))

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Metrics at a training step: to history.jsonl and the tracker, each (metric, step) once per run."""
        fresh = {k: v for k, v in metrics.items() if (k, int(step)) not in self.logged}
        if not fresh:
            return
        self.logged.update((k, int(step)) for k in fresh)
        self.record_history(fresh, step)
        self.tracker.log_metrics(fresh, step=step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.update({k: float(v) for k, v in metrics.items() if v is not None})
        if step:
            self.log_step({k: v for k, v in metrics.items() if v is not None}, step)
        else:
            self.tracker.log_metrics(metrics, step=step)
        if self.rank == 0:
            write_json(self.cell_dir / cellstate.METRICS, self.metrics, sort_keys=True)

    def record_history(self, metrics: dict[str, float], step: int) -> None:
        """Append training-time metrics to the cell's history.jsonl (rank 0): the loss curves of
        `jsweep report`, available without the tracking server. A resumed attempt appends again
        from its checkpoint; readers keep the last value of each step."""
        if self.rank == 0:
            from jsweep.files import append_line

            append_line(
                self.cell_dir / "history.jsonl", json.dumps({"step": int(step), "attempt": self.attempt, **metrics})
            )

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (setup, train, eval) and log time/<name>_seconds."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - t0
            self.log_metrics({f"time/{name}_seconds": self.timings[name]})

    @property
    def model_dir(self) -> Path:
        return self.cell_dir / "model"


@dataclass
class TrainResult:
    model: Any  # the trained model (PEFT-wrapped for LoRA)
    tokenizer: Any
    model_dir: Path | None  # where the final model (or adapter) was saved, if it was
