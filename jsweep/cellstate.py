"""A cell directory's files and status values, named in one place.

The launcher, the executors and the cell process read and write a cell's state through these
names and helpers; no other module spells the file names out.

    cell.json               what the launcher hands the cell: spec (secrets masked), run id, attempt, GPUs
    status.json             what the cell reports: RUNNING (with its stage) | FINISHED | FAILED | KILLED
    metrics.json            the cell's final metrics
    cell.log                the cell's output (secrets redacted)
    tracking_journal.jsonl  tracking calls that could not reach the server, for `jsweep sync`
    checkpoints/            trainer checkpoints (checkpoint-N/ with trainer_state.json when complete)
    executor.json           where the cell runs, as its executor records it (a Slurm job id, its log...)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsweep.files import write_json

CELL = "cell.json"
STATUS = "status.json"
METRICS = "metrics.json"
LOG = "cell.log"
JOURNAL = "tracking_journal.jsonl"
CHECKPOINTS = "checkpoints"
EXECUTOR = "executor.json"
HISTORY = "history.jsonl"

RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"
ENDED = (FINISHED, FAILED, KILLED)


def checkpoints(cell_dir: Path) -> list[Path]:
    """A cell's complete trainer checkpoints (with trainer_state.json), oldest first."""
    d = Path(cell_dir) / CHECKPOINTS
    done = [p for p in d.glob("checkpoint-*") if (p / "trainer_state.json").exists()] if d.is_dir() else []
    return sorted(done, key=lambda p: int(p.name.split("-")[-1]))  # complete checkpoints only


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def status(cell_dir: Path) -> dict[str, Any]:
    return read_json(Path(cell_dir) / STATUS)


def status_value(cell_dir: Path) -> str | None:
    return status(cell_dir).get("status")


def meta(cell_dir: Path) -> dict[str, Any]:
    return read_json(Path(cell_dir) / CELL)


def metrics(cell_dir: Path) -> dict[str, Any]:
    return read_json(Path(cell_dir) / METRICS)


def executor_state(cell_dir: Path) -> dict[str, Any]:
    return read_json(Path(cell_dir) / EXECUTOR)


def write_executor_state(cell_dir: Path, state: dict[str, Any]) -> None:
    write_json(Path(cell_dir) / EXECUTOR, state)


def log_path(cell_dir: Path) -> Path:
    return Path(cell_dir) / LOG


def journal_path(cell_dir: Path) -> Path:
    return Path(cell_dir) / JOURNAL


def returncode(cell_dir: Path) -> int:
    """An exit code for a cell whose process is gone and whose own exit code is unknown (it ran on another
    machine): from what it recorded. FINISHED 0, KILLED -SIGTERM, FAILED 1; nothing recorded (killed
    hard, the node lost) -SIGKILL."""
    import signal

    value = status_value(cell_dir)
    return {FINISHED: 0, KILLED: -signal.SIGTERM, FAILED: 1}.get(value or "", -signal.SIGKILL)
