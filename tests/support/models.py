"""The builtin tiny model's architecture, as conf/model/tiny.yaml states it."""

from __future__ import annotations

import yaml

from tests.support.paths import ROOT

TINY_ARCH = yaml.safe_load((ROOT / "conf" / "model" / "tiny.yaml").read_text())["model"]["arch"]
