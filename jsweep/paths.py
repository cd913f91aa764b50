"""Where jsweep's config tree lives. No Hydra import: planning code and loaders use it too."""

from __future__ import annotations

import os
from pathlib import Path

# conf/ of this checkout, or $JSWEEP_CONF_DIR (read once, at import).
CONF_DIR = Path(os.environ.get("JSWEEP_CONF_DIR") or Path(__file__).resolve().parent.parent / "conf")


def check_output_root(root: str) -> str | None:
    """output_root must be a directory this process can write, or creatable in one (nothing is created now)."""
    path = Path(os.path.expanduser(root)).absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"output_root={root}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"output_root={root}: {probe} is not writable"
    for sub in ("cells", "sweeps"):
        d = path / sub
        if d.exists() and not (d.is_dir() and os.access(d, os.W_OK | os.X_OK)):
            return f"output_root={root}: {d} is not a writable directory"
    return None
