"""Where a cell runs: executors behind one small protocol.

The launcher (jsweep.sweep.SweepRunner) plans, pre-flights, identifies, skips and resumes cells,
retries them, holds their locks, keeps the MLflow parent and child runs, and writes the summary
and the report. An executor only runs a cell's command somewhere and answers for it:

- ``preflight(spec)``: the GPUs a cell would get where it runs (facts: index, name, compute_cap
  or None when unknown) and problems found there (a partition that does not exist...), before
  anything is started.
- ``gpus()`` / ``slots()``: what the launcher's scheduler packs cells onto. The local executor
  hands out GPU ids of this machine; a batch system allocates GPUs itself, so it gives no ids and
  ``slots()`` cells at once.
- ``start(launch)``: start one cell, return its handle.
- ``reattach(cell_dir)``: the handle of a cell still queued or running from an earlier launcher,
  or None; ``alive(cell_dir)`` says whether there is one.

A handle (``CellHandle``) is polled (None while the cell runs, else its exit code), stopped with a
signal, waited for, and describes where the cell runs (``info()``: logged on the cell's run).

Adding an executor: a module here with a class following ``Executor`` (and an ``Options``
dataclass for its own ``launcher.*`` keys), a conf/launcher/<name>.yaml, and one line in EXECUTORS.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jsweep.errors import ConfigError

# launcher.name -> "module:Class". Loaded on use: planning a local sweep imports nothing of the others.
EXECUTORS: dict[str, str] = {
    "local": "jsweep.executors.local:LocalExecutor",
    "slurm": "jsweep.executors.slurm:SlurmExecutor",
}


@dataclass
class Launch:
    """One cell to start: its command and environment, and what the launcher knows of it."""

    cell_dir: Path
    cmd: list[str]
    env: dict[str, str]
    gpu_ids: list[int]  # GPUs the launcher gave it (local executor); [] when the executor allocates
    gpus: int  # GPUs the cell asks for (resources.gpus)
    name: str  # a short name: job names, log prefixes
    prefix: str  # console prefix of its progress lines
    echo: Callable[[str], None] | None  # where its progress lines go (None: not streamed)
    lock_fd: int | None = None  # the cell lock's descriptor, kept open by a local cell
    gpus_in_use: Callable[[list[int], float], list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CellHandle(Protocol):
    pid: int | None  # a local process id, or None where the cell runs elsewhere

    def poll(self) -> int | None: ...

    def stop(self, signum: int) -> None: ...

    def wait_or_kill(self, deadline: float) -> None: ...

    def info(self) -> dict[str, str]: ...


class Executor(Protocol):
    name: str

    def preflight(self, spec: Any) -> tuple[list[dict[str, Any]], list[str]]: ...

    def gpus(self, cells: list[Any]) -> list[int]: ...

    def slots(self) -> int: ...

    def start(self, launch: Launch) -> CellHandle: ...

    def reattach(
        self, cell_dir: Path, echo: Callable[[str], None] | None = None, prefix: str = ""
    ) -> CellHandle | None: ...

    def alive(self, cell_dir: Path) -> bool: ...


def executor_class(name: str) -> type:
    if name not in EXECUTORS:
        raise ConfigError(f"launcher={name}: no such launcher (choose from {', '.join(sorted(EXECUTORS))})")
    module, _, cls = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def options_class(name: str) -> type | None:
    """The dataclass of an executor's own ``launcher.*`` keys, if it has any."""
    return getattr(executor_class(name), "Options", None)


def for_launcher(launcher: Any) -> Executor:
    """A new executor for a launcher spec."""
    return executor_class(launcher.name)(launcher)
