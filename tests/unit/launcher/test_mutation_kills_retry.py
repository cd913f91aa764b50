"""Retry and resume helpers, each against a known answer (issue 21: the mutants that outlived the
CLI-level tests): the out-of-memory retry's new batch shape, the checkpoints a cell resumes from, what
makes a FINISHED cell's results damaged, and the whole run's mean loss after a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jsweep.cellstate import checkpoints
from jsweep.job.sft import run_mean_loss
from jsweep.sweep import PlannedCell, damage, retry_spec


@pytest.fixture(scope="module")
def spec():
    from jsweep.compose import compose_spec

    return compose_spec(["eval=[]", "train.max_steps=2"])


def _with(spec, **train):
    import copy

    new = copy.deepcopy(spec)
    for key, value in train.items():
        setattr(new.train, key, value)
    return new


# --------------------------------------------------------------------------- OOM retry


@pytest.mark.parametrize(
    "micro,accum,expected",
    [
        (8, 3, (4, 6)),  # same effective batch: 8 x 3 = 4 x 6
        (5, 3, (2, 6)),  # an odd micro-batch rounds down (an int, never 2.5)
        (2, 1, (1, 2)),  # down to one example per device
    ],
)
def test_an_oom_retry_halves_the_micro_batch_and_doubles_accumulation(spec, micro, accum, expected):
    before = _with(spec, micro_batch_size=micro, grad_accum=accum, max_length=256)
    after = retry_spec(before)
    got = (after.train.micro_batch_size, after.train.grad_accum)
    assert got == expected and all(type(x) is int for x in got)
    assert after.train.max_length == 256 and after.label == before.label  # nothing else changes
    # the planned spec is left as it was (a new spec, not the old one edited)
    assert (before.train.micro_batch_size, before.train.grad_accum) == (micro, accum)


def test_no_oom_retry_below_one_example_per_device(spec):
    assert retry_spec(_with(spec, micro_batch_size=1, grad_accum=4)) is None


# --------------------------------------------------------------------------- checkpoints


def _checkpoint(cell: Path, step: int, complete: bool = True) -> Path:
    d = cell / "checkpoints" / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if complete:
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")
    return d


def test_checkpoints_are_the_complete_ones_in_step_order(tmp_path):
    assert checkpoints(tmp_path) == []  # no checkpoints/ at all
    (tmp_path / "checkpoints").mkdir()
    assert checkpoints(tmp_path) == []
    ten, two, four = _checkpoint(tmp_path, 10), _checkpoint(tmp_path, 2), _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 12, complete=False)  # killed while saving: no trainer_state.json
    (tmp_path / "checkpoints" / "runs").mkdir()  # not a checkpoint
    assert checkpoints(tmp_path) == [two, four, ten]  # by step, not by name ("checkpoint-10" < "checkpoint-2")


def test_a_checkpoints_file_is_no_checkpoint(tmp_path):
    (tmp_path / "checkpoints").write_text("not a directory", encoding="utf-8")
    assert checkpoints(tmp_path) == []


# --------------------------------------------------------------------------- damaged results


def _cell(
    spec,
    cell_dir: Path,
    status: str | None = "FINISHED",
    metrics: str | None = '{"train/steps": 2}',
    model_file: str | None = "config.json",
    save_model: bool = True,
) -> PlannedCell:
    cell_dir.mkdir(parents=True, exist_ok=True)
    if status:
        (cell_dir / "status.json").write_text(json.dumps({"status": status}), encoding="utf-8")
    if metrics is not None:
        (cell_dir / "metrics.json").write_text(metrics, encoding="utf-8")
    if model_file:
        (cell_dir / "model").mkdir(exist_ok=True)
        (cell_dir / "model" / model_file).write_text("{}", encoding="utf-8")
    return PlannedCell(0, _with(spec, save_model=save_model), "0" * 12, cell_dir)


def test_whole_results_are_no_damage(spec, tmp_path):
    assert damage(_cell(spec, tmp_path / "full")) is None
    assert damage(_cell(spec, tmp_path / "lora", model_file="adapter_config.json")) is None  # a LoRA adapter
    assert damage(_cell(spec, tmp_path / "nosave", model_file=None, save_model=False)) is None


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"metrics": None}, "metrics.json is missing"),
        ({"metrics": "[1, 2]"}, "metrics.json is not a JSON object"),
        ({"metrics": '{"train/steps": '}, "metrics.json is corrupt (JSONDecodeError)"),
        ({"model_file": None}, "the saved model (model/) is missing"),
        ({"model_file": "tokenizer.json"}, "the saved model (model/) is missing"),
    ],
)
def test_damage_names_what_is_wrong_with_a_finished_cell(spec, tmp_path, kwargs, expected):
    assert damage(_cell(spec, tmp_path / "c", **kwargs)) == expected


def test_unreadable_metrics_are_corrupt_and_a_model_file_must_be_a_file(spec, tmp_path):
    cell = _cell(spec, tmp_path / "a", metrics=None)
    (cell.cell_dir / "metrics.json").write_bytes(b'{"x": "\xff\xfe"}')  # not UTF-8
    assert damage(cell) == "metrics.json is corrupt (UnicodeDecodeError)"
    cell = _cell(spec, tmp_path / "b", metrics=None)
    (cell.cell_dir / "metrics.json").mkdir()
    assert damage(cell) == "metrics.json is corrupt (IsADirectoryError)"
    cell = _cell(spec, tmp_path / "c", model_file=None)
    (cell.cell_dir / "model" / "config.json").mkdir(parents=True)  # a directory of that name
    assert damage(cell) == "the saved model (model/) is missing"


@pytest.mark.parametrize("status", [None, "RUNNING", "KILLED", "FAILED"])
def test_only_a_finished_cell_is_judged(spec, tmp_path, status):
    assert damage(_cell(spec, tmp_path / "c", status=status, metrics=None, model_file=None)) is None


# --------------------------------------------------------------------------- run_mean_loss edges


def test_a_resume_at_the_last_step_keeps_the_attempts_loss():
    history = [{"loss": 6.0, "step": 2}]
    assert run_mean_loss(history, 6, 6, 1.25) == 1.25  # nothing trained in this attempt
    assert run_mean_loss(history, -1, 6, 1.25) == 1.25


def test_only_integer_step_losses_before_the_resume_count_each_once():
    history = [
        {"loss": 4.0, "step": 1},
        {"loss": 99.0, "step": 1.0},  # not an int step: ignored
        {"loss": 99.0, "step": 1},  # the same step again: ignored
        {"loss": 2.0, "step": 3},  # the mean of steps 2-3
        {"loss": 99.0},  # no step
        {"loss": 99.0, "step": 5},
    ]  # after the checkpoint (step 3): this attempt's
    # steps 1-3 from the history (4 + 2 x 2 = 8), steps 4-6 from this attempt (3 x 1.0)
    assert run_mean_loss(history, 3, 6, 1.0) == pytest.approx((4.0 + 2 * 2.0 + 3 * 1.0) / 6, abs=1e-12)
    # a loss logged exactly at the checkpoint's step counts
    assert run_mean_loss([{"loss": 3.0, "step": 3}], 3, 4, 1.0) == pytest.approx((3 * 3.0 + 1.0) / 4, abs=1e-12)


def test_an_uninterrupted_run_keeps_the_trainers_loss_bit_for_bit():
    # (0.1 x 3) / 3 is 0.10000000000000002 in floating point: an uninterrupted run must not go through it
    assert run_mean_loss([{"loss": 0.3, "step": 1}], 0, 3, 0.1) == 0.1


def test_a_resume_from_checkpoint_1_counts_step_1():
    # step 1 logged 6.0 before the checkpoint; steps 2-3 of this attempt average 3.0
    assert run_mean_loss([{"loss": 6.0, "step": 1}], 1, 3, 3.0) == pytest.approx(4.0, abs=1e-12)
