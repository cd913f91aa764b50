"""The safety promises of the README tested directly (issue 21), on the real CLI: the git-commit tag,
retry limits, fail_fast, rerun by id prefix, the report switch, a second Ctrl-C. (What a cell's id
depends on, redaction and the run-wide mean training loss are unit tests: tests/unit/launcher/test_identity.py,
tests/unit/test_redaction.py, tests/unit/job/test_final_loss.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import FAST, pid_alive, popen_jsweep, stalled_cell, wait_for
from tests.support.sweeps import run_jsweep
from tests.support.tracking import cell_runs

# --------------------------------------------------------------------------- the launcher's promises, real CLI


def _git_repo(path: Path) -> str:
    """Make ``path`` a git repository with one commit; its HEAD."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    (path / "study.txt").write_text("the study's code\n")
    git("add", "study.txt")
    git("commit", "-qm", "study")
    return git("rev-parse", "HEAD")


def test_the_git_commit_tag_is_the_head_of_the_working_repository(tmp_path):
    from jsweep.tracking import git_commit

    assert git_commit(tmp_path) == "unknown"  # not a repository
    head = _git_repo(tmp_path)
    assert len(head) == 40 and git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("outputs are not code\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "study.txt").write_text("edited\n")
    assert git_commit(tmp_path) == f"{head}-dirty"


def test_oom_retries_stop_at_the_limit_fail_fast_stops_launching_and_report_false_writes_none(
    tmp_path, mlflow_client_for, tiny_model_dir
):
    head = _git_repo(tmp_path)
    args = [
        "-m",
        "lr=1e-5,1e-4",
        "train.max_steps=2",
        "eval=[]",
        "train.micro_batch_size=4",
        "train.grad_accum=1",
        "launcher.oom_retries=1",
        "launcher.fail_fast=true",
        "launcher.report=false",
    ]
    proc = run_jsweep(args, tmp_path, JSWEEP_FAULT="oom*@1")  # out of memory on every attempt
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert out.count("out of memory; retry") == 1 and "retry 1/1 with micro_batch_size 4->2, grad_accum 1->2" in out
    assert "retry 2/" not in out
    assert "not started (launcher.fail_fast)" in out and "summary (0/2 finished)" in out, out[-3000:]
    assert "jsweep: report" not in out
    sweep_dirs = list((tmp_path / "outputs" / "sweeps").iterdir())
    assert sweep_dirs and not any((d / "report").exists() for d in sweep_dirs)
    runs = cell_runs(mlflow_client_for(tmp_path))
    assert len(runs) == 1  # the second cell never started
    (run,) = runs
    assert run.info.status == "FAILED" and run.data.tags["jsweep.error_class"] == "OutOfMemoryError"
    assert run.data.tags["jsweep.oom_retries"] == "1" and "jsweep.oom_retry.2" not in run.data.tags
    assert run.data.tags["jsweep.git_commit"] == head
    summary = json.loads(next(d / "summary.json" for d in sweep_dirs if (d / "summary.json").exists()).read_text())
    assert [(c["status"], c["error"]) for c in summary["cells"]] == [
        ("FAILED", summary["cells"][0]["error"]),
        ("NOT_RUN", "not started (launcher.fail_fast)"),
    ]
    assert summary["cells"][0]["error"].startswith("OutOfMemoryError")


def test_a_finished_sweep_skips_and_reruns_by_cell_id_prefix_axis_value_or_flag(
    tmp_path, mlflow_client_for, tiny_model_dir
):
    """One store through the ways a finished sweep runs again: all skipped; `launcher.rerun` with a cell-id
    prefix runs only the named cell, and a new axis value only the new cell (one sweep: the named cell,
    a finished cell not named, a new cell); `--rerun` with a setting runs a finished cell again. Previous
    results are kept each time."""
    grid = ["-m", "lr=1e-5,1e-4", "train.max_steps=2", "eval=[]"]
    first = run_jsweep([*grid, "launcher.concurrency=2"], tmp_path)  # two CPU cells at once (not in the cell id)
    assert first.returncode == 0, first.stdout[-3000:]
    again = run_jsweep(grid, tmp_path)
    assert again.returncode == 0
    assert again.stdout.count("skip: already finished in run") == 2
    client = mlflow_client_for(tmp_path)
    assert len(cell_runs(client)) == 2
    # launcher.rerun with a cell-id prefix runs only the named cell (lr=1e-5, not lr=1e-4), and a new axis
    # value (lr=3e-4) only the new cell: one sweep of the three, two cells at once.
    ids = {r.data.params["lr"]: r.data.tags["jsweep.cell_id"] for r in cell_runs(client)}
    assert sorted(ids) == ["0.0001", "1e-05"]
    target = ids["1e-05"]
    named = f"launcher.rerun=['{target[:6]}']"
    again = run_jsweep(
        ["-m", "lr=1e-5,1e-4,3e-4", "train.max_steps=2", "eval=[]", "launcher.concurrency=2", named], tmp_path
    )
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("rerun: previous results kept in") == 1
    assert again.stdout.count("skip: already finished") == 1 and "lr=0.0001" in _line(again.stdout, "skip: ")
    started = [ln for ln in again.stdout.splitlines() if " start " in ln]
    assert len(started) == 2 and sorted("lr=1e-05" in ln for ln in started) == [False, True]
    assert any("lr=0.0003" in ln for ln in started)
    replaced = sorted(p.name for p in (tmp_path / "outputs" / "cells").iterdir() if ".replaced-" in p.name)
    assert [name.split(".replaced-")[0] for name in replaced] == [target]
    after = cell_runs(client)
    assert len(after) == 4
    assert sorted(r.data.tags["jsweep.cell_id"] for r in after if r.data.params["lr"] != "0.0003") == sorted(
        [*ids.values(), target]
    )
    # --rerun runs a finished cell again and keeps the previous results.
    rerun = run_jsweep(["--rerun", "lr=1e-5", "train.max_steps=2", "eval=[]"], tmp_path)
    assert rerun.returncode == 0 and "previous results kept in" in rerun.stdout
    assert len(cell_runs(client)) == 5
    assert any(".replaced-" in p.name for p in (tmp_path / "outputs" / "cells").iterdir())


def _line(out: str, marker: str) -> str:
    """The one line of ``out`` holding ``marker``."""
    (line,) = [ln for ln in out.splitlines() if marker in ln]
    return line


# --------------------------------------------------------------------------- a second Ctrl-C


def test_stop_signals_record_the_first_signal_and_ignore_the_next():
    import os
    import signal

    from jsweep.sweep import Stopped, StopSignals

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopSignals() as stops:
            stops.check()  # nothing yet
            os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: recorded
            os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C: ignored
            os.kill(os.getpid(), signal.SIGTERM)  # and any other stop signal after the first
            assert stops.signum == signal.SIGINT
            with pytest.raises(Stopped):
                stops.check()
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored before (nohup, a background job) ...
        with StopSignals() as stops:
            os.kill(os.getpid(), signal.SIGINT)
            assert stops.signum == 0  # ... stays ignored
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_second_ctrl_c_during_the_clean_up_is_ignored(tmp_path, mlflow_client_for, tiny_model_dir):
    """Ctrl-C stops the running cells gracefully (KILLED in the cell and in MLflow, exit 130, the cell
    process gone); a second Ctrl-C during that clean-up changes nothing."""
    import os
    import signal

    proc = popen_jsweep(FAST, tmp_path, JSWEEP_FAULT="sleep@3")
    wait_for(lambda: stalled_cell(tmp_path), what="training to stall")
    cell = stalled_cell(tmp_path)
    pid = json.loads((cell / "status.json").read_text())["pid"]
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C ...
    import time

    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # ... and, impatient, Ctrl-C again
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert out.count("interrupted; stopping 1 running cell(s)") == 1 and "KeyboardInterrupt" not in out, out[-3000:]
    assert json.loads((cell / "status.json").read_text())["status"] == "KILLED"
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "KILLED"
    summary = json.loads(next((tmp_path / "outputs" / "sweeps").rglob("summary.json")).read_text())
    assert [c["status"] for c in summary["cells"]] == ["KILLED"]
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the cell process to exit")
