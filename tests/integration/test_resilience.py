"""Sweeps that survive: kill -9 and resume, SIGTERM and a closed terminal, tracking outage + sync (the
OOM retry is in test_sweep's failing-cell test; Ctrl-C and a second run of a finished sweep are in
test_promises). Each test asserts on the MLflow store and the cell directories of a real sweep on the
embedded default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import FAST, as_in_a_terminal, cell_dirs, pid_alive, popen_jsweep, stalled_cell, wait_for
from tests.support.servers import free_port, stop_server, tracking_server
from tests.support.store import seed_store
from tests.support.sweeps import cli_env, run_jsweep
from tests.support.tracking import cell_runs


def test_kill_9_mid_training_then_rerun_resumes_in_the_same_run(tmp_path, mlflow_client_for, tiny_model_dir):
    # Reference: the same cell uninterrupted, in another directory (its own store), run at the same time
    # as the interrupted one: the two processes share nothing, so their start-ups overlap on 2 cores.
    ref = tmp_path / "ref"
    ref.mkdir()
    # an evaluation at step 3, before the kill at step 4 (the tiny recipe's first epoch is longer than 6 steps)
    args = [*FAST, "train.eval_steps=3"]
    ref_proc = popen_jsweep(args, ref)

    work = tmp_path / "work"
    work.mkdir()
    proc = popen_jsweep(args, work, JSWEEP_FAULT="sleep@4")  # stalls at step 4, after checkpoint-2
    wait_for(
        lambda: stalled_cell(work, "checkpoints/checkpoint-2/trainer_state.json"),
        timeout=240,
        what="checkpoint-2 and the stall at step 4",
    )
    cell = stalled_cell(work)
    pid = json.loads((cell / "status.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # kill -9 of the cell, mid-training
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "killed by signal 9" in out
    client = mlflow_client_for(work)
    (run,) = cell_runs(client)
    assert run.info.status == "FAILED"
    ref_out, _ = ref_proc.communicate(timeout=600)
    assert ref_proc.returncode == 0, ref_out[-3000:]
    ref_metrics = json.loads((cell_dirs(ref)[0] / "metrics.json").read_text())

    again = run_jsweep(args, work)
    assert again.returncode == 0, again.stdout[-2000:]
    assert " resume " in again.stdout
    runs = cell_runs(client)
    assert len(runs) == 1 and runs[0].info.run_id == run.info.run_id  # same run, no duplicate
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["jsweep.resumed_from"] == "checkpoint-2"
    metrics = json.loads((cell / "metrics.json").read_text())
    # Stated tolerance: resumed and uninterrupted runs agree on the final losses to 1e-4.
    assert metrics["train/steps"] == ref_metrics["train/steps"] == 6
    assert metrics["eval/loss"] == pytest.approx(ref_metrics["eval/loss"], abs=1e-4)
    assert metrics["train/final_loss"] == pytest.approx(ref_metrics["train/final_loss"], abs=1e-4)  # over all 6 steps
    assert metrics["train/tokens"] == ref_metrics["train/tokens"] > 0  # counted over both attempts
    # The whole metric history, each step once, equals the uninterrupted run's: in MLflow and in history.jsonl.
    (ref_run,) = cell_runs(mlflow_client_for(ref))
    ref_client = mlflow_client_for(ref)
    for key in ("train/loss", "train/lr", "train/grad_norm", "eval/loss"):
        got = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        want = [(m.step, m.value) for m in ref_client.get_metric_history(ref_run.info.run_id, key)]
        got.sort(), want.sort()
        assert [s for s, _ in got] == [s for s, _ in want], key
        assert [v for _, v in got] == pytest.approx([v for _, v in want], abs=1e-4), key
    assert [s for s, _ in got] == [3, 6]  # eval/loss: step 3 came from the killed attempt
    for key in ("train/loss", "train/lr", "train/grad_norm"):  # step 3 was re-trained, logged once
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == [1, 2, 3, 4, 5, 6], key
        assert sorted(r["step"] for r in _history(cell) if key in r) == [1, 2, 3, 4, 5, 6], key
    raw, ref_raw = _history(cell), _history(cell_dirs(ref)[0])
    for key in ("train/loss", "train/lr", "train/grad_norm", "eval/loss"):  # each (metric, step) once
        assert [r["step"] for r in raw if key in r] == [r["step"] for r in ref_raw if key in r], key
    from jsweep.tools.report import read_history  # what `jsweep report` plots

    rows, ref_rows = read_history(cell / "history.jsonl"), read_history(cell_dirs(ref)[0] / "history.jsonl")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == [1, 2, 3, 4, 5, 6]
    for row, ref_row in zip(rows, ref_rows):
        assert sorted(row) == sorted(ref_row)
        assert {k: v for k, v in row.items() if k not in ("step", "attempt")} == pytest.approx(
            {k: v for k, v in ref_row.items() if k not in ("step", "attempt")}, abs=1e-4
        )


def _history(cell: Path) -> list[dict]:
    return [json.loads(line) for line in (cell / "history.jsonl").read_text().splitlines()]


def test_sigterm_to_the_launcher_stops_its_cells_too(tmp_path, mlflow_client_for, tiny_model_dir):
    """`kill <sweep pid>`, or Slurm's scancel: the cells run in sessions of their own, so without the
    launcher's handling they would outlive it."""
    proc = popen_jsweep(FAST, tmp_path, JSWEEP_FAULT="sleep@3")
    wait_for(lambda: stalled_cell(tmp_path), what="training to stall")
    cell = stalled_cell(tmp_path)
    pid = json.loads((cell / "status.json").read_text())["pid"]
    os.kill(proc.pid, signal.SIGTERM)  # the launcher alone, not its process group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "interrupted by SIGTERM; stopping 1 running cell(s)" in out
    assert json.loads((cell / "status.json").read_text())["status"] == "KILLED"
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "KILLED" and run.data.tags["jsweep.error_class"] == "SIGTERM"
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the cell process to exit")


def test_a_closed_terminal_stops_the_cells_too(tmp_path, mlflow_client_for, tiny_model_dir):
    """The sweep's console is a terminal that goes away: writes to it fail (EIO) and SIGHUP arrives.
    The launcher must still stop its cells and record them, though it can no longer print."""
    import select
    import threading

    master, slave = os.openpty()
    seed_store(tmp_path / "mlflow.db")  # as run_jsweep does
    proc = subprocess.Popen(
        [sys.executable, "-m", "jsweep", *FAST],
        cwd=tmp_path,
        env=cli_env(tmp_path, JSWEEP_FAULT="sleep@3"),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,
    )
    os.close(slave)
    stop = threading.Event()

    def drain():  # the terminal shows the output until it is closed
        while not stop.is_set():
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_for(lambda: stalled_cell(tmp_path), what="training to stall")
    finally:
        stop.set()
        reader.join(timeout=5)
        os.close(master)  # the terminal window is closed...
    cell = stalled_cell(tmp_path)
    pid = json.loads((cell / "status.json").read_text())["pid"]
    os.kill(proc.pid, signal.SIGHUP)  # ...and its hang-up reaches the launcher
    assert proc.wait(timeout=120) == 128 + signal.SIGHUP
    assert json.loads((cell / "status.json").read_text())["status"] == "KILLED"
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "KILLED" and run.data.tags["jsweep.error_class"] == "SIGHUP"
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the cell process to exit")


def test_tracking_server_stopped_mid_sweep_then_sync(tmp_path, tiny_model_dir):
    import urllib.request

    from mlflow.tracking import MlflowClient

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = tracking_server(tmp_path, port)
    try:

        def up() -> bool:
            try:
                return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200
            except OSError:
                return False

        wait_for(up, timeout=90, what="the MLflow server")
        proc = popen_jsweep(
            ["-m", "lr=1e-5,1e-4", "train.max_steps=6", "eval=[]"],
            tmp_path,
            MLFLOW_TRACKING_URI=uri,
            JSWEEP_FAULT="sleep@3:lr=1e-05",
        )
        wait_for(lambda: stalled_cell(tmp_path), what="the first cell to stall")
        stop_server(server)  # the tracking server dies mid-sweep
        pid = json.loads((stalled_cell(tmp_path) / "status.json").read_text())["pid"]
        os.kill(pid, signal.SIGUSR1)  # let the stalled cell go on
        out, _ = proc.communicate(timeout=900)
    finally:
        if server.poll() is None:
            stop_server(server)
    # Cells went on without the server; nothing was lost locally.
    assert "tracking call(s) could not reach the tracking server" in out, out[-3000:]
    for cell in cell_dirs(tmp_path):
        log = (cell / "cell.log").read_text()[-3000:]
        assert json.loads((cell / "status.json").read_text())["status"] == "FINISHED", out[-2000:] + log
        assert "eval/loss" in json.loads((cell / "metrics.json").read_text()), log
    server = tracking_server(tmp_path, port)
    try:
        wait_for(up, timeout=90, what="the MLflow server to restart")
        sync = run_jsweep(["sync"], tmp_path, MLFLOW_TRACKING_URI=uri)
        assert sync.returncode == 0, sync.stdout + sync.stderr
        client = MlflowClient(uri)
        runs = cell_runs(client)
        assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs), sync.stdout
        assert all("eval/loss" in r.data.metrics and r.data.tags.get("jsweep.complete") == "true" for r in runs), (
            sync.stdout
        )
        history = {
            r.info.run_id: [m.step for m in client.get_metric_history(r.info.run_id, "train/loss")] for r in runs
        }
        assert all(sorted(steps) == [1, 2, 3, 4, 5, 6] for steps in history.values()), history  # no duplicates
        again = run_jsweep(["sync"], tmp_path, MLFLOW_TRACKING_URI=uri)
        assert "0 call(s) re-logged" in again.stdout, again.stdout
    finally:
        stop_server(server)
