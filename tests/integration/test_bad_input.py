"""Bad input gets a one-line error, a non-zero exit, no MLflow run and no training."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.sweeps import run_jsweep

CASES = [
    (["-m", "dataset=nope"], "unknown dataset 'nope' (choose from: "),
    (["-m", "dataset=dolly,nope"], "unknown dataset 'nope'"),
    (["model=gpt5"], "unknown model 'gpt5' (choose from: "),
    (["lr=-1"], "lr must be a positive number, got '-1'"),
    (["-m", "lr=abc,1e-4"], "lr must be a positive number, got 'abc'"),
    (["lr=0"], "lr must be a positive number"),
    (["foo=1"], "unknown key 'foo' (valid keys: "),
    (["train.epochz=3"], "unknown key 'train.epochz' (valid keys under train: "),
    (["train.epochs=abc"], "train.epochs"),
    (["dataset.path=/nonexistent/dolly.json"], "dataset path not found: /nonexistent/dolly.json"),
    (["dataset=ichikara", "data_source=hub"], "dataset 'ichikara' is not on the hub: set dataset.path="),
]


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict[tuple[str, ...], tuple[subprocess.CompletedProcess, Path]]:
    """Every case's CLI run, each in a directory of its own, two at a time (a CLI start-up is most of
    their time, and the cases share nothing): by arguments, the run and its directory."""
    dirs = [tmp_path_factory.mktemp("bad_input") for _ in CASES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(
            pool.map(lambda i: run_jsweep(CASES[i][0], dirs[i], timeout=120, fresh_store=True), range(len(CASES)))
        )
    return {tuple(args): (proc, d) for (args, _), proc, d in zip(CASES, procs, dirs)}


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_reported_before_anything_runs(refused, args, message):
    proc, tmp_path = refused[tuple(args)]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("jsweep: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists(), "no MLflow run may be created"
    assert not (tmp_path / "outputs" / "cells").exists(), "no cell may start"


def test_all_problems_are_listed_at_once(tmp_path):
    proc = run_jsweep(["-m", "dataset=dolly,ichikara", "dataset.path=/nope/a.json,/nope/b.json"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("dataset path not found") == 4
    assert "4 problem(s) found before launching; nothing ran" in proc.stderr
