"""launcher=slurm on a real Slurm cluster: a one-node cluster from Debian's packages, fake GPUs as GRES
(scripts/slurm_up.sh; .ci/run starts it). Each cell is a Slurm job; the launcher polls squeue and reads
the cell's own status. Outside CI these tests skip when no cluster is up; in CI (CI=true, or JSWEEP_SLURM_REQUIRED=1 as
.ci/run sets) that fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.processes import FAST, cell_dirs, popen_jsweep, stalled_cell, wait_for
from tests.support.sweeps import run_jsweep
from tests.support.tracking import cell_runs

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]  # one worker: the tests share one small cluster

SLURM = ["launcher=slurm", "launcher.poll_interval=0.5", "launcher.cpus_per_gpu=1", "launcher.concurrency=2"]


def _cluster_up() -> str | None:
    if not shutil.which("sbatch"):
        return "Slurm is not installed (sudo scripts/slurm_up.sh installs and starts a one-node cluster)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed ({exc})"
    if not any(s.strip() in ("idle", "mixed", "allocated") for s in out.splitlines()):
        return f"no Slurm node is up (sinfo: {out.strip() or 'nothing'}); run sudo scripts/slurm_up.sh"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    why = _cluster_up()
    if why:
        if os.environ.get("CI") == "true" or os.environ.get("JSWEEP_SLURM_REQUIRED") == "1":
            pytest.fail(f"CI runs the Slurm tests on a real cluster: {why}")
        pytest.skip(why)


def wait_for_slurm(predicate, timeout: float = 180.0, what: str = "condition"):
    """wait_for with a longer default: Slurm starts and requeues jobs on its own schedule."""
    return wait_for(predicate, timeout, what)


def _job(cell: Path) -> dict:
    return json.loads((cell / "executor.json").read_text())


def _in_queue(job_id: str) -> bool:
    return bool(
        subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    )


def test_preflight_asks_the_cluster_before_submitting_anything(tmp_path):
    proc = run_jsweep([*SLURM, "launcher.partition=nosuch"], tmp_path)
    assert proc.returncode == 2 and "launcher.partition=nosuch: no such partition (partitions: debug)" in proc.stderr
    proc = run_jsweep([*SLURM, "distributed=ddp", "resources.gpus=64", "resources.cpu_processes=true"], tmp_path)
    assert proc.returncode == 2 and "resources.gpus=64 but nodes of partition debug have 4 GPU(s)" in proc.stderr
    assert not (tmp_path / "outputs" / "cells").exists()


def test_a_two_cell_sweep_runs_as_slurm_jobs(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = run_jsweep(
        [
            "-m",
            *SLURM,
            "dataset=dolly,ichikara",
            "train.max_steps=2",
            "eval=[llm_jp_eval]",
            "eval.llm_jp_eval.tasks=[jnli]",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    runs = cell_runs(mlflow_client_for(tmp_path))
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    node = subprocess.run(["sinfo", "-h", "-o", "%n"], capture_output=True, text=True).stdout.split()[0]
    for run in runs:
        tags = run.data.tags
        cell = Path(tags["jsweep.cell_dir"])
        job = _job(cell)
        assert tags["jsweep.slurm.job_id"] == job["job_id"] and job["jobs"] == [job["job_id"]]
        assert tags["jsweep.slurm.node"] == node and Path(tags["jsweep.slurm.log"]).exists()
        assert "llm_jp_eval/AVG_partial" in run.data.metrics
        log = (cell / "cell.log").read_text()
        # Slurm allocated one of the node's 4 GPUs (GRES: whichever is free, not always 0 or 1, as a job of
        # the test before may still be completing) and set CUDA_VISIBLE_DEVICES; the jobs run offline.
        gpus = re.findall(rf"slurm job {job['job_id']} on {re.escape(node)} \(restart 0\), GPUs (\d+)\n", log)
        assert len(gpus) == 1 and int(gpus[0]) in range(4), log[:2000]
        script = (cell / "slurm.sbatch").read_text()
        assert "#SBATCH --gres=gpu:1" in script and "#SBATCH --requeue" in script
    assert proc.stdout.count("job_id ") == 2  # each cell's job id, node and log on the console


def test_a_two_gpu_cell_runs_its_processes_inside_its_allocation(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = run_jsweep(
        [*SLURM, "distributed=ddp", "resources.gpus=2", "resources.cpu_processes=true", "train.max_steps=2", "eval=[]"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    (cell,) = cell_dirs(tmp_path)
    log = (cell / "cell.log").read_text()
    # two ranks in one 2-GPU job, on the two GPUs Slurm allocated (whichever are free: not always 0,1)
    (gpus,) = re.findall(r"slurm job \d+ on \S+ \(restart \d+\), GPUs ([\d,]+)", log)
    assert len(set(gpus.split(","))) == 2 and log.count("x2 (ddp)") == 2, log[-2000:]
    assert "#SBATCH --gres=gpu:2" in (cell / "slurm.sbatch").read_text()
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "FINISHED"


def _requeued_and_startable(job_id: str) -> bool:
    """The requeued job is back in the queue (PENDING) and the clock has passed the second it was requeued in.

    When slurmd kills the first run it revokes the job's launch credential, and it refuses a credential
    issued in that same second ("Job credential revoked": the job would end FAILED, never run again). Slurm
    itself therefore holds a requeued job about two minutes (its EligibleTime); the tests start it sooner
    (StartTime=now), which is safe once the clock is past the job's new SubmitTime, the second its requeue
    completed (after the revocation)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=False
    ).stdout
    state = re.search(r"\bJobState=(\S+)", shown)
    submitted = re.search(r"\bSubmitTime=(\S+)", shown)
    if not state or state.group(1) != "PENDING" or not submitted:
        return False
    return time.time() >= time.mktime(time.strptime(submitted.group(1), "%Y-%m-%dT%H:%M:%S")) + 1


def _start_requeued_now(job_id: str, *more: str) -> None:
    wait_for_slurm(lambda: _requeued_and_startable(job_id), what=f"job {job_id} requeued and startable")
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now", *more], check=True)


def _assert_resumed_in_the_same_run(proc: subprocess.Popen, cell: Path, job: str, client) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    (run,) = cell_runs(client)
    assert run.info.status == "FINISHED" and run.data.tags["jsweep.resumed_from"] == "checkpoint-2"
    assert _job(cell)["jobs"] == [job]  # the same job, run again
    log = (cell / "cell.log").read_text()
    assert "(restart 1)" in log
    assert json.loads((cell / "metrics.json").read_text())["train/steps"] == 6
    return log


def test_a_requeued_job_resumes_from_its_checkpoint_in_the_same_run(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = popen_jsweep([*SLURM, *FAST], tmp_path, JSWEEP_FAULT="sleep@4")  # stalls at step 4, after checkpoint-2
    cell = wait_for_slurm(
        lambda: stalled_cell(tmp_path, "checkpoints/checkpoint-2/trainer_state.json"),
        what="checkpoint-2 and the stall at step 4",
    )
    job = _job(cell)["job_id"]
    subprocess.run(["scontrol", "requeue", job], check=True)  # as a preemption does
    _start_requeued_now(job)
    _assert_resumed_in_the_same_run(proc, cell, job, mlflow_client_for(tmp_path))


def test_a_job_near_its_time_limit_requeues_itself_and_resumes(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = popen_jsweep(
        [*SLURM, *FAST, "launcher.time_limit=10", "launcher.requeue_before_limit=120"], tmp_path, JSWEEP_FAULT="sleep@4"
    )
    cell = wait_for_slurm(
        lambda: stalled_cell(tmp_path, "checkpoints/checkpoint-2/trainer_state.json"),
        what="checkpoint-2 and the stall at step 4",
    )
    job = _job(cell)["job_id"]
    assert "#SBATCH --time=10" in (cell / "slurm.sbatch").read_text()
    assert "#SBATCH --signal=B:USR1@120" in (cell / "slurm.sbatch").read_text()
    # The time limit brought forward to 3 minutes after the job's start: the USR1 due 120 s before it is due
    # now, and slurmctld sends it at its next time-limit check (every 30 s), well before the limit itself.
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=3"], check=True)
    _start_requeued_now(job, "TimeLimit=10")  # the second run gets its full time again
    log = _assert_resumed_in_the_same_run(proc, cell, job, mlflow_client_for(tmp_path))
    assert f"slurm job {job}: time limit near, requeued" in log


def test_scancel_marks_the_cell_killed(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = popen_jsweep([*SLURM, *FAST], tmp_path, JSWEEP_FAULT="sleep@3")
    cell = wait_for_slurm(lambda: stalled_cell(tmp_path), what="the stall")
    subprocess.run(["scancel", _job(cell)["job_id"]], check=True)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1 and "KILLED" in out, out[-3000:]
    assert json.loads((cell / "status.json").read_text())["status"] == "KILLED"
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "KILLED"


def test_ctrl_c_on_the_launcher_cancels_its_jobs(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = popen_jsweep([*SLURM, *FAST], tmp_path, JSWEEP_FAULT="sleep@3")
    cell = wait_for_slurm(lambda: stalled_cell(tmp_path), what="the stall")
    job = _job(cell)["job_id"]
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode != 0 and "interrupted" in out, out[-3000:]
    assert not _in_queue(job)
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "KILLED"


def test_a_restarted_launcher_reattaches_to_its_running_job(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = popen_jsweep([*SLURM, *FAST], tmp_path, JSWEEP_FAULT="sleep@3")
    cell = wait_for_slurm(lambda: stalled_cell(tmp_path), what="the stall")
    job = _job(cell)["job_id"]
    os.kill(proc.pid, signal.SIGKILL)  # the launcher dies; its job goes on
    proc.communicate(timeout=60)
    assert _in_queue(job)
    again = popen_jsweep([*SLURM, *FAST], tmp_path)
    lock = cell.parent.parent / ".locks" / f"{cell.name}.lock"

    def reattached() -> bool:  # the new launcher holds the cell, following the same job
        try:
            holder = json.loads(lock.read_text() or "{}")
        except (OSError, ValueError):
            return False
        return holder.get("pid") == again.pid and holder.get("jsweep.slurm.job_id") == job

    wait_for_slurm(reattached, what="the new launcher to reattach")
    pid = json.loads((cell / "status.json").read_text())["pid"]
    os.kill(pid, signal.SIGUSR1)  # the stalled cell goes on
    out, _ = again.communicate(timeout=240)
    assert again.returncode == 0, out[-3000:]
    assert f"reattached to job_id {job}" in out
    assert _job(cell)["jobs"] == [job]  # nothing submitted twice
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "FINISHED" and run.data.tags["jsweep.slurm.job_id"] == job


def test_nodes_without_access_to_the_tracking_server_journal_and_the_launcher_logs(
    tmp_path, tiny_model_dir, monkeypatch
):
    from tests.support.servers import PASSWORD, USER, auth_server, password_nowhere
    from tests.support.servers import auth_client as client
    from tests.support.tracking import cell_runs

    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with auth_server(tmp_path) as uri:
        proc = run_jsweep(
            [
                *SLURM,
                "launcher.tracking_from_nodes=false",
                "train.max_steps=2",
                "eval=[llm_jp_eval]",
                "eval.llm_jp_eval.tasks=[jnli]",
            ],
            tmp_path,
            MLFLOW_TRACKING_URI=uri,
            MLFLOW_TRACKING_USERNAME=USER,
            MLFLOW_TRACKING_PASSWORD=PASSWORD,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "journaled tracking call(s) from the login node" in proc.stdout
        (cell,) = cell_dirs(tmp_path)
        assert not (cell / "tracking_journal.jsonl").exists() or not (cell / "tracking_journal.jsonl").read_text()
        (run,) = cell_runs(client(uri))
        assert run.info.status == "FINISHED" and "eval/loss" in run.data.metrics
        assert "train/loss" in run.data.metrics and run.data.tags["jsweep.slurm.job_id"] == _job(cell)["job_id"]
        assert password_nowhere(tmp_path, proc.stdout, proc.stderr) == []
