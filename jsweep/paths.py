"""Where jsweep's config tree lives. No Hydra import: planning code and loaders use it too."""

from __future__ import annotations

import os
from pathlib import Path

# conf/ of this checkout, or $JSWEEP_CONF_DIR (read once, at import).
CONF_DIR = Path(os.environ.get("JSWEEP_CONF_DIR") or Path(__file__).resolve().parent.parent / "conf")
