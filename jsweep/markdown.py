"""Small Markdown helpers for report sections (tables, escaped cells) and tolerant file readers.

Shared by the report (jsweep.tools.report, jsweep.tools.report_judged) and by evaluators that
write their own report section (a Declaration's ``report_section``). Pure Python, no imports above it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines in ``path``, or [] when it is missing or unreadable."""
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):
        return []


def cell(text: Any, limit: int = 160) -> str:
    """``text`` as one Markdown table cell: pipes escaped, newlines as <br>, cut at ``limit`` characters."""
    s = "" if text is None else str(text)
    s = s.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")
    return s if len(s) <= limit else s[:limit] + "…"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]
