"""Where things are: the checkout's root and the test data directories."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
TEST_DATA = TESTS / "data"  # reference values (tests/data/fidelity/...)
MALFORMED = TESTS / "fixtures" / "malformed"  # malformed upstream-shaped files
