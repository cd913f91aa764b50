"""Sweeps driven as processes: start the CLI as a terminal would, wait for a condition, find the cell
that stalled on an injected fault (JSWEEP_FAULT=sleep@N), tell whether a pid is still alive."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.sweeps import start_jsweep

STALLED = "fault: stalled at step"  # what a JSWEEP_FAULT=sleep@N cell logs while it waits for SIGUSR1
FAST = ["train.max_steps=6", "train.checkpoint_steps=2", "train.delete_checkpoints=false", "eval=[]"]


def cell_dirs(tmp: Path) -> list[Path]:
    """The cell directories of the sweeps run in ``tmp`` (outputs/cells/<id>), in name order ([] before any)."""
    root = tmp / "outputs" / "cells"
    return sorted(p for p in root.iterdir() if p.is_dir() and "." not in p.name) if root.exists() else []


def stalled_cell(tmp: Path, *also: str) -> Path | None:
    """The cell directory whose log shows the injected stall (and holds every path in `also`), or None.
    Tolerates a sweep that has not yet created its cells directory, a cell or its log."""
    root = tmp / "outputs" / "cells"
    if not root.exists():
        return None
    for cell in cell_dirs(tmp):
        log = cell / "cell.log"
        try:
            if STALLED in log.read_text() and all((cell / rel).exists() for rel in also):
                return cell
        except FileNotFoundError:
            continue
    return None


def as_in_a_terminal() -> None:
    # A shell starts background commands (`make test &`, CI runners) with SIGINT and SIGQUIT ignored, and
    # a process that starts with SIGINT ignored never raises KeyboardInterrupt. The sweep under test
    # gets the disposition it has when started from a terminal, where Ctrl-C reaches it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_jsweep(args: list[str], cwd: Path, *, fresh_store: bool = False, **env: str) -> subprocess.Popen:
    """``python -m jsweep ARGS`` started in its own session, as from a terminal; output piped."""
    return start_jsweep(
        args,
        cwd,
        popen={"stderr": subprocess.STDOUT, "start_new_session": True, "preexec_fn": as_in_a_terminal},
        fresh_store=fresh_store,
        **env,
    )


def wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something true, and return that (AssertionError after ``timeout`` s)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
