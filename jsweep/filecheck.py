"""Data files checked before any loader opens them: regular files only, UTF-8, JSON of a readable depth.

Used by the sweep's pre-flight (datasets) and by evaluators' own file checks (jsweep.eval.run).
"""

from __future__ import annotations

import re
import stat
from pathlib import Path


def _regular_file_problem(path: Path) -> str | None:
    """A data path that is not a regular file (a FIFO, a device, a socket) would hang or never end: refused
    without opening it."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror})"
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    return f"{path}: not a regular file (a FIFO, device or socket); give a file or a directory of files"


def _text_problem(path: Path) -> str | None:
    """A data file that is not UTF-8 text, or JSON nested too deeply to read."""
    if (problem := _regular_file_problem(path)) or path.is_dir():
        return problem
    if path.suffix in (".parquet", ".arrow"):
        return None
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})"
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        return f"{path}: JSON nested {depth} levels deep (more than {MAX_JSON_DEPTH}); not read"
    return None


MAX_JSON_DEPTH = 500


def _json_depth(text: str) -> int:
    """The deepest nesting of brackets in JSON text (strings skipped), found without recursion."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0
    brackets = re.sub(r"[^\[\]{}]+", "", re.sub(r'"(?:[^"\\]|\\.)*"', "", text))
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
