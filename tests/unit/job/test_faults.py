"""The fault hooks of the fault-tolerance tests (jsweep.job.faults): ``JSWEEP_FAULT=<kind>@<step>[:<match>]``
fires at a training step, ``<kind>@eval`` where evaluation starts; the first attempt of a matching cell only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from jsweep.job.faults import EVAL, at_evaluation, fault_callbacks, parse


def cell(attempt: int = 1, label: str = "lr=1e-05", cell_id: str = "0123abcd4567") -> SimpleNamespace:
    """What the hooks read of a cell's context (jsweep.job.context.CellContext)."""
    return SimpleNamespace(attempt=attempt, spec=SimpleNamespace(label=label), cell_dir=Path("outputs") / cell_id)


def test_parse_reads_kind_step_or_eval_and_match():
    assert parse(None) is None and parse("") is None
    assert parse("raise@3:lr=1e-05") == ("raise", 3, "lr=1e-05")
    assert parse("oom*@1") == ("oom*", 1, "")
    assert parse("sigkill") == ("sigkill", 1, "")
    assert parse("sigkill@eval") == ("sigkill", EVAL, "")
    assert parse("raise@eval:0123") == ("raise", EVAL, "0123")


def test_an_eval_fault_fires_where_evaluation_starts_and_never_in_training(monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.setenv("JSWEEP_FAULT", "raise@eval")
    assert fault_callbacks(cell()) == []  # no training-step callback
    with pytest.raises(RuntimeError, match="^injected fault at evaluation$"):
        at_evaluation(cell())
    at_evaluation(cell(attempt=2))  # a retry is not the first attempt: nothing happens
    monkeypatch.setenv("JSWEEP_FAULT", "raise@eval:0123")  # a cell-id prefix that matches
    with pytest.raises(RuntimeError, match="at evaluation"):
        at_evaluation(cell())
    at_evaluation(cell(cell_id="ffffffffffff", label="lr=3e-4"))  # another cell: nothing happens
    monkeypatch.setenv("JSWEEP_FAULT", "raise*@eval")  # every attempt
    with pytest.raises(RuntimeError, match="at evaluation"):
        at_evaluation(cell(attempt=3))


def test_a_step_fault_fires_once_at_its_step_and_never_at_evaluation(monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.setenv("JSWEEP_FAULT", "raise@2")
    at_evaluation(cell())  # nothing happens at evaluation
    (callback,) = fault_callbacks(cell())
    callback.on_step_end(None, SimpleNamespace(global_step=1), None)  # before its step: nothing
    with pytest.raises(RuntimeError, match="^injected fault at step 2$"):
        callback.on_step_end(None, SimpleNamespace(global_step=2), None)
    callback.on_step_end(None, SimpleNamespace(global_step=3), None)  # fired once, disarmed
    assert callback.armed is False
    monkeypatch.delenv("JSWEEP_FAULT")
    assert fault_callbacks(cell()) == []
    at_evaluation(cell())  # unset: nothing happens
