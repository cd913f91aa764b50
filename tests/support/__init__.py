"""Shared test helpers, defined once (tests import them from here, never from a conftest):

- ``paths``: the repository root and the test data directories;
- ``specs``: ``spec_for(*overrides)``, a composed, typed cell spec;
- ``sweeps``: ``run_jsweep`` and ``cli_env``, the real CLI in a temporary directory on a temporary SQLite store;
- ``cellstate``: cell and sweep directories written in the launcher's formats (for report, judge, grading tests);
- ``tracking``: ``StoredRun``, a real CellTracker on a temporary MLflow store, read back through MlflowClient;
- ``models``: ``TINY_ARCH``, the builtin tiny model's architecture;
- ``judge_server``: a scripted OpenAI-compatible judge server on 127.0.0.1;
- ``example_evaluator``: the documented worked example of adding an evaluator;
- ``fixtures``: the pytest fixtures, registered for every test by tests/conftest.py (``pytest_plugins``).
"""
