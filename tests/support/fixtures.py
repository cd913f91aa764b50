"""The suite's pytest fixtures, as a plugin (tests/conftest.py lists it in ``pytest_plugins``): available
to every test under tests/ without an import."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.models import TINY_ARCH
from tests.support.paths import ROOT
from tests.support.store import seed_store
from tests.support.tracking import StoredRun


@pytest.fixture(scope="session")
def real_jglue() -> Path:
    """Real JGLUE v1.3 files: $JSWEEP_REAL_JGLUE, else ../shared/data/jglue-v1.3 beside the checkout.

    Where the variable is set (CI sets it), missing data fails the test instead of skipping it.
    """
    configured = os.environ.get("JSWEEP_REAL_JGLUE")
    path = Path(configured) if configured else ROOT.parent / "shared" / "data" / "jglue-v1.3"
    if not (path / "jcommonsenseqa" / "valid-v1.3.json").exists():
        if configured:
            pytest.fail(f"JSWEEP_REAL_JGLUE={configured} holds no JGLUE v1.3 files")
        pytest.skip(f"real JGLUE files not present ({path}); set JSWEEP_REAL_JGLUE")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from jsweep.models.tiny import build_tiny

    return build_tiny(TINY_ARCH)


@pytest.fixture
def mlflow_client_for():
    def make(path: Path):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=f"sqlite:///{seed_store(path / 'mlflow.db')}")

    return make


@pytest.fixture
def stored_run(tmp_path) -> StoredRun:
    return StoredRun(tmp_path / "store")
