"""The Slurm executor: each cell one Slurm batch job (sbatch), GPUs as GRES.

The launcher stays on the login node: it plans, pre-flights and tracks the sweep as it does locally,
and submits up to ``launcher.concurrency`` cells at once. A cell's job runs the same command a local
cell runs (a multi-GPU cell starts its processes inside its allocation with torchrun); Slurm sets
CUDA_VISIBLE_DEVICES from the GRES it allocated.

Job state is read without accounting (no slurmdbd): ``squeue`` says whether the job is still queued
or running; once it is gone, the cell's own status.json says how it ended (and the job script's exit
code file, where the job lived to write it). A job that is preempted, requeued (``scontrol requeue``)
or about to reach its time limit is requeued by Slurm and runs the cell again, which resumes from its
last checkpoint in the same MLflow run. ``scancel`` ends the cell KILLED. The job id, its log and its
node are in the cell directory's executor.json, so a launcher started again reattaches to jobs still
queued or running instead of submitting them twice.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsweep import cellstate
from jsweep.errors import ConfigError
from jsweep.executors import Launch
from jsweep.redaction import redact_text


@dataclass
class Options:
    partition: str | None = None  # None: the cluster's default partition
    account: str | None = None
    qos: str | None = None
    time_limit: str | None = None  # sbatch --time (e.g. "04:00:00"); None: the partition's default
    cpus_per_gpu: int = 8  # CPUs per GPU of a cell (a CPU-only cell gets cpus_per_task)
    cpus_per_task: int = 1
    mem: str | None = None  # sbatch --mem (e.g. "64G"); None: the partition's default
    gres: str = "gpu"  # GRES name (gpu, or gpu:a100 for a type)
    requeue: bool = True  # preempted / near the time limit: requeue and resume from checkpoint
    requeue_before_limit: int = 120  # seconds before the time limit at which the job requeues itself
    extra_sbatch: list[str] = field(default_factory=list)  # more #SBATCH lines, e.g. ["--constraint=h100"]
    setup: list[str] = field(default_factory=list)  # shell lines run in the job before the cell (module load...)
    env: dict[str, str] = field(default_factory=dict)  # environment of the jobs (HF_HUB_OFFLINE=1 ...)
    poll_interval: float = 5.0  # seconds between squeue polls
    python: str | None = None  # the Python of the compute nodes; None: the launcher's own
    tracking_from_nodes: bool = True  # False: compute nodes cannot reach the tracking server; cells journal
    # their tracking calls and the launcher logs them from the login node


def _run(cmd: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _have_slurm() -> str | None:
    missing = [c for c in ("sbatch", "squeue", "scancel", "sinfo") if not shutil.which(c)]
    return f"launcher=slurm: {', '.join(missing)} not found (run the sweep on a Slurm login node)" if missing else None


def queue_state(job_id: str) -> str | None:
    """The job's state in squeue (PENDING, RUNNING, COMPLETING, REQUEUED...), None once it has left the
    queue. A squeue that fails (slurmctld busy) counts as still there: asked again at the next poll."""
    try:
        proc = _run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "UNKNOWN"
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return None
        return "UNKNOWN"
    state = proc.stdout.strip().splitlines()
    if state:
        return state[0].strip()
    # Gone from squeue's view: asked once more of slurmctld, which still knows a job that just ended
    # (MinJobAge) and says whether it is being requeued rather than finished.
    try:
        shown = _run(["scontrol", "show", "job", "-o", str(job_id)], timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "UNKNOWN"
    for field_ in shown.split():
        if field_.startswith("JobState="):
            value = field_.partition("=")[2]
            return value if value in ALIVE else None
    return None


# Job states of a job that will still run (or is still running) its cell.
ALIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "SUSPENDED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}


def job_node(job_id: str) -> str:
    try:
        out = _run(["squeue", "-h", "-j", str(job_id), "-o", "%N"], timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.splitlines()[0].strip() if out else ""


JOB_SCRIPT = """#!/bin/bash
{sbatch}
# Written by jsweep for cell {cell_dir}. The launcher passes the environment (tracking URI,
# credentials) at submission; nothing secret is in this file.
{setup}
rc_file={rc_file}
rm -f "$rc_file"
# Near the time limit (--signal=B:USR1@N) or asked to: requeue. The cell gets SIGTERM, records KILLED
# and keeps its checkpoints; the requeued job resumes it from the last one, in the same MLflow run.
requeue() {{ echo "[jsweep] slurm job $SLURM_JOB_ID: time limit near, requeued" >> {log}; scontrol requeue "$SLURM_JOB_ID"; }}
trap requeue USR1
echo "[jsweep] slurm job $SLURM_JOB_ID on $SLURMD_NODENAME (restart ${{SLURM_RESTART_COUNT:-0}}), GPUs ${{CUDA_VISIBLE_DEVICES:-none}}" >> {log}
"$@" > >({python} -m jsweep.executors.logpipe {log}) 2>&1 &
child=$!
while true; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break      # wait was interrupted by a trapped signal: the cell still runs
done
echo "$rc" > "$rc_file"
exit "$rc"
"""


class SlurmJob:
    """A cell's Slurm job: polled through squeue, its outcome read from the cell directory."""

    pid = None

    def __init__(
        self,
        job_id: str,
        cell_dir: Path,
        log: Path,
        poll_interval: float,
        echo: Callable[[str], None] | None,
        prefix: str,
    ):
        self.job_id, self.cell_dir, self.log = str(job_id), Path(cell_dir), log
        self.poll_interval = poll_interval
        self.echo, self.prefix = echo, prefix
        self.node = ""
        self.state: str | None = "PENDING"
        self.checked = 0.0
        self.rc: int | None = None
        self.offset = cellstate.log_path(cell_dir).stat().st_size if cellstate.log_path(cell_dir).exists() else 0

    def _stream(self) -> None:
        """The cell's progress lines ([jsweep] ...) to the launcher's console, as a local cell's are."""
        if self.echo is None:
            return
        path = cellstate.log_path(self.cell_dir)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            mark = line.find("[jsweep]")
            if mark >= 0:
                self.echo(f"{self.prefix} {line[mark + len('[jsweep]') :].strip()}")

    def poll(self) -> int | None:
        if self.rc is not None:
            return self.rc
        now = time.monotonic()
        if now - self.checked < self.poll_interval:
            return None
        self.checked = now
        self._stream()
        self.state = queue_state(self.job_id)
        if self.state is not None:
            if self.state == "RUNNING" and not self.node:
                self.node = job_node(self.job_id)
                if self.node:
                    record = cellstate.executor_state(self.cell_dir)
                    record["node"] = self.node
                    cellstate.write_executor_state(self.cell_dir, record)
            return None
        self._stream()
        rc_file = self.cell_dir / "slurm.rc"
        recorded = cellstate.returncode(self.cell_dir)
        try:
            rc = int(rc_file.read_text().strip())
        except (OSError, ValueError):
            rc = recorded
        # The cell's own record wins over the script's code: a cell killed (scancel) records KILLED.
        self.rc = recorded if cellstate.status_value(self.cell_dir) in (cellstate.KILLED, None) else rc
        if cellstate.status_value(self.cell_dir) == cellstate.FINISHED and rc not in (0,):
            self.rc = rc
        return self.rc

    def stop(self, signum: int) -> None:
        """scancel: the cell gets SIGTERM (it records KILLED), then SIGKILL after the cluster's KillWait."""
        try:
            _run(["scancel", self.job_id], timeout=60)
        except (OSError, subprocess.SubprocessError):
            pass

    def wait_or_kill(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if queue_state(self.job_id) is None:
                return
            time.sleep(1)
        try:
            _run(["scancel", "--signal=KILL", "--full", self.job_id], timeout=60)
        except (OSError, subprocess.SubprocessError):
            pass

    def info(self) -> dict[str, str]:
        out = {"jsweep.slurm.job_id": self.job_id, "jsweep.slurm.log": str(self.log)}
        node = self.node or cellstate.executor_state(self.cell_dir).get("node", "")
        if node:
            out["jsweep.slurm.node"] = node
        return out


class SlurmExecutor:
    name = "slurm"
    Options = Options

    def __init__(self, launcher: Any):
        self.launcher = launcher
        self.options: Options = launcher.options or Options()
        self._cluster: dict[str, Any] | None = None
        # The launcher logs a finished cell's journal itself when its node could not reach the server.
        self.replays_journals = not self.options.tracking_from_nodes

    # ------------------------------------------------------------------ pre-flight
    def cluster(self) -> dict[str, Any]:
        """Partitions of the cluster: {name: {"gpus_per_node": max GRES count, "default": bool, "nodes": n}}."""
        if self._cluster is None:
            if missing := _have_slurm():
                raise ConfigError(missing)
            try:
                proc = _run(["sinfo", "-h", "-o", "%P|%G|%D|%a"], timeout=60)
            except (OSError, subprocess.SubprocessError) as exc:
                raise ConfigError(f"launcher=slurm: sinfo failed ({exc})") from exc
            if proc.returncode != 0:
                raise ConfigError(f"launcher=slurm: sinfo failed: {proc.stderr.strip()[:300]}")
            parts: dict[str, Any] = {}
            for line in proc.stdout.splitlines():
                name, gres, nodes, avail = [*line.split("|"), "", "", "", ""][:4]
                default = name.endswith("*")
                name = name.rstrip("*")
                p = parts.setdefault(name, {"gpus_per_node": 0, "default": default, "nodes": 0, "up": False})
                p["nodes"] += int(nodes or 0)
                p["up"] = p["up"] or avail == "up"
                p["gpus_per_node"] = max(p["gpus_per_node"], gres_gpus(gres, self.options.gres))
            self._cluster = parts
        return self._cluster

    def partition(self) -> str | None:
        parts = self.cluster()
        return self.options.partition or next((n for n, p in parts.items() if p["default"]), None)

    def preflight(self, spec: Any) -> tuple[list[dict[str, Any]], list[str]]:
        """What the cluster can give, asked of slurmctld (no GPU needed on the login node): the partition
        exists and is up, and its nodes have the GPUs a cell asks for."""
        parts = self.cluster()
        name = self.partition()
        if name is None or name not in parts:
            known = ", ".join(sorted(parts)) or "none"
            what = (
                f"launcher.partition={name}" if name else "launcher.partition is not set and the cluster has no default"
            )
            return [], [f"{what}: no such partition (partitions: {known})"]
        p = parts[name]
        problems = []
        if not p["up"]:
            problems.append(f"launcher.partition={name}: the partition is not up")
        gpus = [
            {"index": i, "name": f"slurm gres {self.options.gres}", "compute_cap": None}
            for i in range(p["gpus_per_node"])
        ]
        if spec.resources.gpus > p["gpus_per_node"]:
            problems.append(
                f"resources.gpus={spec.resources.gpus} but nodes of partition {name} have "
                f"{p['gpus_per_node']} GPU(s) ({self.options.gres} GRES)"
            )
            gpus = []
        return gpus, problems

    # ------------------------------------------------------------------ scheduling
    def gpus(self, cells: list[Any]) -> list[int]:
        return []  # Slurm allocates GPUs; the launcher only limits how many cells are submitted

    def slots(self) -> int:
        return self.launcher.concurrency

    def sbatch_lines(self, launch: Launch) -> list[str]:
        o = self.options
        lines = [
            f"--job-name={launch.name}",
            f"--output={launch.cell_dir / 'slurm-%j.out'}",
            "--open-mode=append",
            "--nodes=1",
            "--ntasks=1",
        ]
        if self.partition():
            lines.append(f"--partition={self.partition()}")
        for key, value in (("account", o.account), ("qos", o.qos), ("time", o.time_limit), ("mem", o.mem)):
            if value:
                lines.append(f"--{key}={value}")
        if launch.gpus > 0:
            lines += [f"--gres={o.gres}:{launch.gpus}", f"--cpus-per-task={max(1, o.cpus_per_gpu * launch.gpus)}"]
        else:
            lines.append(f"--cpus-per-task={max(1, o.cpus_per_task)}")
        if o.requeue:
            lines += ["--requeue", f"--signal=B:USR1@{o.requeue_before_limit}"]
        else:
            lines.append("--no-requeue")
        lines += [x if x.startswith("-") else f"--{x}" for x in o.extra_sbatch]
        return lines

    def start(self, launch: Launch) -> SlurmJob:
        o = self.options
        env = dict(launch.env)
        env.pop("CUDA_VISIBLE_DEVICES", None)  # Slurm sets it from the GRES it allocates
        env.update({k: str(v) for k, v in o.env.items()})
        if not o.tracking_from_nodes:  # nothing to reach from the node: no credentials either
            env["JSWEEP_TRACKING_OFFLINE"] = "1"
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
                env.pop(key, None)
        python = o.python or sys.executable
        cmd = [python if c == sys.executable else c for c in launch.cmd]
        script = launch.cell_dir / "slurm.sbatch"
        log = cellstate.log_path(launch.cell_dir)
        script.write_text(
            JOB_SCRIPT.format(
                sbatch="\n".join(f"#SBATCH {line}" for line in self.sbatch_lines(launch)),
                cell_dir=launch.cell_dir,
                setup="\n".join(o.setup),
                rc_file=shlex.quote(str(launch.cell_dir / "slurm.rc")),
                log=shlex.quote(str(log)),
                python=shlex.quote(python),
            )
        )
        proc = _run(
            ["sbatch", "--parsable", "--export=ALL", f"--chdir={os.getcwd()}", str(script), *cmd], timeout=120, env=env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch failed: {redact_text(proc.stderr.strip())[:500]}")
        job_id = proc.stdout.strip().split(";")[0]
        slurm_log = launch.cell_dir / f"slurm-{job_id}.out"
        record = cellstate.executor_state(launch.cell_dir)
        history = record.get("jobs", [])
        cellstate.write_executor_state(
            launch.cell_dir,
            {
                "executor": "slurm",
                "job_id": job_id,
                "log": str(slurm_log),
                "partition": self.partition(),
                "submitted": time.time(),
                "jobs": [*history, job_id],
            },
        )
        return SlurmJob(job_id, launch.cell_dir, slurm_log, o.poll_interval, launch.echo, launch.prefix)

    def _live_job(self, cell_dir: Path) -> dict[str, Any] | None:
        record = cellstate.executor_state(cell_dir)
        if record.get("executor") != "slurm" or not record.get("job_id") or _have_slurm():
            return None
        state = queue_state(record["job_id"])
        return record if state not in (None, "UNKNOWN") else None

    def reattach(self, cell_dir: Path, echo: Callable[[str], None] | None = None, prefix: str = "") -> SlurmJob | None:
        record = self._live_job(cell_dir)
        if record is None:
            return None
        job = SlurmJob(
            record["job_id"], cell_dir, Path(record.get("log", "")), self.options.poll_interval, echo, prefix
        )
        job.node = record.get("node", "")
        return job

    def alive(self, cell_dir: Path) -> bool:
        return self._live_job(Path(cell_dir)) is not None


def gres_gpus(gres: str, name: str) -> int:
    """GPUs per node in sinfo's %G ("gpu:4", "gpu:a100:8(S:0-1)", "(null)")."""
    base = name.split(":")[0]
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == base and len(parts) >= 2 and parts[-1].isdigit():
            if ":" in name and name.split(":")[1] not in parts[1:-1]:
                continue
            total = max(total, int(parts[-1]))
    return total
