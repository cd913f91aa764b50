"""The suite's fixtures live in tests/support/fixtures.py (a plugin, registered here for every test);
helper functions are imported from tests.support (specs, sweeps, cellstate, tracking, models, paths)."""

pytest_plugins = ["tests.support.fixtures"]
