"""Writing the small JSON state files of cells and sweeps (status, metrics, cell.json, summary).

They are read by other processes while being rewritten (the launcher polls a running cell's
status.json), and a cell can be killed mid-write. ``write_json`` writes a temporary file in the
same directory, flushes it to disk and renames it over the target, so a reader sees the old
content or the new, never a truncated file. Every one passes through jsweep.redaction first, so no
state file holds a secret (a cell gets its config's secrets from the launcher in its environment).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file: readable by others as usual


def write_json(path: Path, obj: Any, **dumps: Any) -> None:
    """Atomically replace ``path`` with ``obj`` as JSON (``dumps`` as for json.dumps, default indent=2),
    secrets redacted."""
    from jsweep.redaction import redact

    write_text(Path(path), json.dumps(redact(obj), **{"indent": 2, **dumps}))


def write_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``: a temporary file in the same directory, flushed to
    disk, then renamed over the target (a reader sees the old content or the new, never a part)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _MODE)  # mkstemp makes 0600; results on a shared disk stay readable
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line (``line`` without its newline) to a JSON-lines file, in one write. A last line
    left unterminated by a process killed mid-write is closed first, so it cannot swallow this one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        prefix = b""
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                prefix = b"\n"
        f.write(prefix + line.encode("utf-8") + b"\n")
