"""The local executor: each cell a subprocess of the launcher on this machine (today's behaviour).

GPUs are this machine's (CUDA_VISIBLE_DEVICES, nvidia-smi); the launcher's scheduler hands each
cell its GPU ids. The cell's output is streamed to its cell.log (secrets redacted) and its progress
lines to the console; the cell keeps its lock's descriptor, so the lock stays held while the cell
lives, even without the launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsweep import cellstate
from jsweep.executors import Launch
from jsweep.redaction import redact_text


class CellProcess:
    """A cell's subprocess, its output streamed to cell.log and (optionally) the console."""

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        log_path: Path,
        prefix: str,
        echo: Callable[[str], None] | None,
        gpus_in_use: Callable[[list[int], float], list[int]] | None = None,
        pass_fds: tuple[int, ...] = (),
    ):
        self.started = time.time()
        self.gpus_in_use = gpus_in_use
        self.log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the process, poll() closes it
        try:
            # pass_fds: the cell's lock, so that it stays held while the cell lives, even without the launcher.
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        except BaseException:
            self.log.close()
            raise
        self.thread = threading.Thread(target=self._pump, args=(prefix, echo), daemon=True)
        self.thread.start()

    def _pump(self, prefix: str, echo: Callable[[str], None] | None) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = redact_text(line)  # third-party lines too (MLflow prints its tracking URI)
            try:
                self.log.write(line)
            except (OSError, ValueError):  # a full disk, or closed by poll() while a grandchild still holds
                pass  # the pipe: keep draining it, or the writer would block
            if echo is None:
                continue
            mark = line.find("[jsweep]")  # not always at the start: ranks share the pipe
            if mark >= 0:
                echo(f"{prefix} {line[mark + len('[jsweep]') :].strip()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def info(self) -> dict[str, str]:
        return {}

    def stop(self, signum: int) -> None:
        self.signal_group(signum)

    def still_needs(self, ids: list[int]) -> list[int]:
        """The scheduler's question: which of ``ids`` this cell still uses."""
        return self.gpus_in_use(ids, self.started) if self.gpus_in_use else ids

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None:
            self.thread.join(timeout=5)
            self.log.close()
        return rc

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the cell (already sent SIGTERM) until ``deadline`` (time.monotonic), then SIGKILL its
        process group. No second SIGTERM: it could land inside the cell's handling of the first, while
        it records KILLED."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait()


class LocalExecutor:
    name = "local"
    Options = None

    def __init__(self, launcher: Any):
        self.launcher = launcher

    def preflight(self, spec: Any) -> tuple[list[dict[str, Any]], list[str]]:
        """This machine's GPUs (those the sweep may use), probed once."""
        from jsweep.distributed import gpu_facts
        from jsweep.scheduler import discover_gpus

        if not hasattr(self, "_facts"):
            visible = set(discover_gpus(self.launcher.gpus))
            self._facts = [g for g in gpu_facts() if g["index"] in visible]
        return self._facts, []

    def gpus(self, cells: list[Any]) -> list[int]:
        from jsweep.scheduler import discover_gpus

        return discover_gpus(self.launcher.gpus) if any(c.spec.resources.gpus > 0 for c in cells) else []

    def slots(self) -> int:
        return self.launcher.concurrency

    def start(self, launch: Launch) -> CellProcess:
        return CellProcess(
            launch.cmd,
            launch.env,
            cellstate.log_path(launch.cell_dir),
            launch.prefix,
            launch.echo,
            launch.gpus_in_use,
            pass_fds=(launch.lock_fd,) if launch.lock_fd is not None else (),
        )

    def reattach(self, cell_dir: Path, echo: Callable[[str], None] | None = None, prefix: str = "") -> None:
        return None  # a local cell whose launcher died finishes on its own, holding its lock

    def alive(self, cell_dir: Path) -> bool:
        from jsweep.locking import FileLock, cell_lock_path

        return FileLock(cell_lock_path(Path(cell_dir))).held_elsewhere()
