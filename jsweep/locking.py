"""Lock files held by a process: released by the OS when the process dies, however it dies.

- A **cell lock** (``<output_root>/.locks/<cell_id>.lock``) is taken by the launcher before it
  decides to run a cell, and handed to the cell's process (an inherited descriptor), so it is held
  as long as either lives. A second sweep that wants the same cell finds it busy and says where it
  runs; a cell that outlived its launcher (kill -9) still holds it, so it is never started twice.
- A **launcher lock** (``<sweep_dir>/launcher.lock``) is held by a sweep's launcher while it runs.
  A later sweep that finds the parent run of that sweep RUNNING with the lock free knows the
  launcher died and marks the run KILLED.
- The **store lock** (``<sqlite db>.lock``) serialises the creation of an SQLite MLflow store: two
  processes migrating a fresh database at once leave it broken for good.

Each lock file holds a JSON line saying who holds it (pid, host, sweep, since), for messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if needed), non-blocking unless asked."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, blocking: bool = False, **info: Any) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        self.note(**info)
        return True

    def note(self, **info: Any) -> None:
        """Record who holds the lock (merged with what was recorded by this holder)."""
        if self.fd is None:
            return
        current = self.holder() if info.pop("_merge", True) else {}
        record = {**current, "pid": os.getpid(), "host": socket.gethostname(), **info}
        if "since" not in record:
            record["since"] = time.time()
        data = (json.dumps(record, default=str) + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def holder(self) -> dict[str, Any]:
        """What the holder recorded (empty if nothing readable)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def held_elsewhere(self) -> bool:
        """True when another process holds the lock now (checked by trying it)."""
        if self.fd is not None:
            return False
        if not self.path.exists():
            return False
        probe = FileLock(self.path)
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        del probe
        return False

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            finally:
                self.fd = None


def cell_lock_path(cell_dir: Path) -> Path:
    """A cell's lock, ``<output_root>/.locks/<cell_id>.lock``: outside its directory, which --rerun archives,
    and outside ``cells/``, which holds only cell directories."""
    cell_dir = Path(cell_dir)
    return cell_dir.parent.parent / ".locks" / f"{cell_dir.name}.lock"


def describe_holder(info: dict[str, Any]) -> str:
    """``running in sweep S (launcher pid N on host H, cell pid M) since T``, from a lock's record."""
    parts = []
    if info.get("sweep_id"):
        parts.append(f"sweep {info['sweep_id']}")
    who = []
    if info.get("pid"):
        alive = _alive(int(info["pid"])) if info.get("host") == socket.gethostname() else None
        who.append(f"launcher pid {info['pid']}" + (" (gone)" if alive is False else ""))
    if info.get("host"):
        who.append(f"on {info['host']}")
    if info.get("cell_pid"):
        who.append(f"cell pid {info['cell_pid']}")
    text = " ".join(parts) + (f" ({', '.join(who)})" if who else "")
    if info.get("since"):
        text += f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(info['since'])))}"
    if info.get("sweep_dir"):
        text += f", sweep directory {info['sweep_dir']}"
    return text.strip() or "another process"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` URI (None for other stores and in-memory databases)."""
    if not uri.startswith("sqlite:"):
        return None
    rest = uri.split(":", 1)[1]
    path = rest[3:] if rest.startswith("///") else rest.lstrip("/")
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold ``<db>.lock`` while an SQLite store is opened (and created or migrated); no-op otherwise."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    lock = FileLock(db.with_name(db.name + ".lock"))
    lock.acquire(blocking=True)
    try:
        yield
    finally:
        lock.release()
