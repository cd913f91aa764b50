"""Pack jobs onto free GPUs (or CPU slots) and start the next one as soon as resources free up.

The scheduler knows nothing of cells or MLflow: a job is a key, a GPU count and a ``start``
callback that receives the GPU ids it was given and returns a process-like handle (``poll()``
returns None while running, else the exit code). Jobs start in order; a later job that fits
starts while an earlier, larger one waits (backfill). A job's GPUs are released whatever its
exit code, so a failing cell frees its GPUs for the next. A running job may also give back part
of its GPUs early: a handle with ``still_needs(ids)`` returns the subset it still uses (a
multi-GPU cell evaluates on its first GPU once training ends), and the rest go to the next job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Handle(Protocol):
    def poll(self) -> int | None: ...

    # Optional: ``still_needs(ids: list[int]) -> list[int]``, the subset of its GPUs the job still
    # uses; polled while it runs. Handles without it keep all their GPUs until they exit.


@dataclass
class Job:
    key: str
    gpus: int  # GPUs needed; 0 = a CPU slot
    start: Callable[[list[int]], Handle]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finished:
    job: Job
    returncode: int
    seconds: float


def discover_gpus(setting: Any = "auto") -> list[int]:
    """GPU ids to schedule on: an explicit list, or all visible ones (CUDA_VISIBLE_DEVICES, nvidia-smi)."""
    if setting not in (None, "auto"):
        if isinstance(setting, int):
            return [setting]
        if isinstance(setting, str):
            return [int(x) for x in setting.split(",") if x.strip()]
        return [int(x) for x in setting]
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) for x in env.split(",") if x.strip().isdigit()]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
            ).stdout
            return [int(x) for x in out.split() if x.strip().isdigit()]
        except (OSError, subprocess.SubprocessError):
            return []
    return []


class Scheduler:
    def __init__(self, gpus: Sequence[int], cpu_slots: int = 1, poll_interval: float = 0.2):
        self.gpus = list(gpus)
        self.cpu_slots = max(1, cpu_slots)
        self.poll_interval = poll_interval
        self.free = list(self.gpus)
        self.cpu_free = self.cpu_slots
        self.stop_launching = False
        self.check: Callable[[], None] | None = None  # called between steps; may raise to stop the run

    def fits(self, job: Job) -> bool:
        return job.gpus <= len(self.free) if job.gpus > 0 else self.cpu_free > 0

    def possible(self, job: Job) -> bool:
        return job.gpus <= len(self.gpus)

    def run(self, jobs: Sequence[Job], on_finish: Callable[[Finished], Job | None] | None = None) -> list[Finished]:
        """Run ``jobs``; ``on_finish`` may return a job to run next (a retry), queued first."""
        pending = list(jobs)
        for job in pending:
            if not self.possible(job):
                raise ValueError(f"job {job.key} needs {job.gpus} GPUs but only {len(self.gpus)} exist")
        running: list[tuple[Job, Handle, list[int], float]] = []
        done: list[Finished] = []
        while pending or running:
            if self.check:
                self.check()
            if not self.stop_launching:
                for job in list(pending):
                    if not self.fits(job):
                        continue
                    ids = self._take(job)
                    pending.remove(job)
                    running.append((job, job.start(ids), ids, time.monotonic()))
            elif pending:
                pending.clear()
            still = []
            for job, handle, ids, t0 in running:
                rc = handle.poll()
                if rc is None:
                    still.append((job, handle, self._shrink(job, handle, ids), t0))
                    continue
                self._release(job, ids)
                fin = Finished(job, rc, time.monotonic() - t0)
                done.append(fin)
                if on_finish:
                    retry = on_finish(fin)
                    if retry is not None:
                        pending.insert(0, retry)
            running = still
            if running:
                time.sleep(self.poll_interval)
        return done

    def _shrink(self, job: Job, handle: Handle, ids: list[int]) -> list[int]:
        """Release the GPUs a running job says it no longer uses; return those it keeps."""
        needs = getattr(handle, "still_needs", None)
        if job.gpus == 0 or needs is None or len(ids) < 2:
            return ids
        keep = [g for g in needs(list(ids)) if g in ids]
        if not keep or len(keep) == len(ids):
            return ids
        self.free = sorted(self.free + [g for g in ids if g not in keep])
        return keep

    def _take(self, job: Job) -> list[int]:
        if job.gpus > 0:
            ids, self.free = self.free[: job.gpus], self.free[job.gpus :]
            return ids
        self.cpu_free -= 1
        return []

    def _release(self, job: Job, ids: list[int]) -> None:
        if job.gpus > 0:
            self.free = sorted(self.free + ids)
        else:
            self.cpu_free += 1
