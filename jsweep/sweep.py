"""Plan and run a sweep: pre-flight every cell, then run each in its own process.

``plan`` turns typed cell specs into planned cells (ids, directories, data digests) and raises
one PreflightError listing every problem before anything launches. ``run`` creates the MLflow
parent run, starts one subprocess per cell through the scheduler, marks failed cells, prints a
summary, and returns it. No Hydra here: the Hydra launcher and the single-run path both call in.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from jsweep import __version__
from jsweep.errors import JsweepError, PreflightError
from jsweep.files import write_json
from jsweep.identity import cell_id as compute_cell_id
from jsweep.redaction import ENV as SECRETS_ENV
from jsweep.redaction import redact_text, remember, secret_values, secrets_in
from jsweep.distributed import check_resources, deepspeed_config, gpu_facts, processes, uses_bf16
from jsweep.scheduler import Finished, Job, Scheduler, discover_gpus
from jsweep.spec import CellSpec, validate_cell
from jsweep.tracking import Journal, SweepTracker, apply_op, fail_ops, flatten, git_commit, redact, resolve_uri


@dataclass
class PlannedCell:
    index: int
    spec: CellSpec
    cell_id: str
    cell_dir: Path
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.index}-{self.cell_id[:8]}"


@dataclass
class CellOutcome:
    cell: PlannedCell
    status: str                      # FINISHED | FAILED | KILLED | SKIPPED
    seconds: float
    run_id: str | None
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepResult:
    sweep_id: str
    sweep_dir: Path
    parent_run_id: str | None
    outcomes: list[CellOutcome]

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status not in ("FINISHED", "SKIPPED")]


# --------------------------------------------------------------------------- planning

def _check_model(spec: CellSpec) -> str | None:
    m = spec.model
    if m.builtin or m.init == "random":
        return None
    if m.source.startswith(("/", ".", "~")):
        return None if Path(os.path.expanduser(m.source)).exists() else f"model path not found: {m.source}"
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(m.source, "config.json", revision=m.revision), str):
            return (f"model {m.source} is not in the local hub cache and HF_HUB_OFFLINE=1 "
                    f"(pre-fill the cache, or set model.source=/path/to/model)")
    return None


def _check_evaluators(spec: CellSpec) -> list[str]:
    """Each evaluator's own pre-flight check (data present, options valid); imports no torch."""
    from jsweep import registries

    problems = []
    for name, options in spec.eval.items():
        if name not in registries.EVALUATORS:
            continue  # reported by validate_cell
        check = getattr(registries.EVALUATORS.get(name), "check", None)
        if check is not None:
            problems.extend(f"eval.{name}: {p}" for p in check(options))
    return problems


def plan(specs: list[CellSpec]) -> list[PlannedCell]:
    """Validate every cell and its data; raise PreflightError with all problems at once."""
    from jsweep.data.load import preflight

    problems: list[str] = []
    planned: list[PlannedCell] = []
    data_cache: dict[str, Any] = {}
    seen: dict[str, int] = {}
    gpus: list[dict[str, Any]] | None = None
    for i, spec in enumerate(specs):
        where = f"cell {i} ({spec.label})"
        for p in validate_cell(spec):
            problems.append(f"{where}: {p}")
        model_problem = _check_model(spec)
        if model_problem:
            problems.append(f"{where}: {model_problem}")
        problems.extend(f"{where}: {p}" for p in _check_evaluators(spec))
        if gpus is None:
            visible = set(discover_gpus(spec.launcher.gpus))
            gpus = [g for g in gpu_facts() if g["index"] in visible]
        problems.extend(f"{where}: {p}" for p in check_resources(spec, gpus))
        data: dict[str, Any] = {}
        key = json.dumps([spec.dataset.__dict__, spec.model.builtin], sort_keys=True, default=str)
        try:
            if key not in data_cache:
                # Local data is read and validated now, so a bad record stops the sweep before any work.
                data_cache[key] = preflight(spec.dataset, builtin_model=spec.model.builtin)
            data = data_cache[key]
        except JsweepError as exc:
            data_cache[key] = exc
            problems.append(f"{where}: {exc}")
        except Exception as exc:  # noqa: BLE001 - an unexpected loader failure is still a pre-flight problem
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
        if isinstance(data_cache.get(key), Exception):
            data = {}
        cid = compute_cell_id(spec.to_dict(), {"data": data.get("digest"), "model_revision": spec.model.revision})
        if cid in seen:
            problems.append(f"{where}: duplicate of cell {seen[cid]} (same config, id {cid})")
        seen.setdefault(cid, i)
        cell_dir = Path(spec.output_root).resolve() / "cells" / cid
        planned.append(PlannedCell(i, spec, cid, cell_dir, data))
    if problems:
        raise PreflightError(problems)
    return planned


# --------------------------------------------------------------------------- running

class CellProcess:
    """A cell's subprocess, its output streamed to cell.log and (optionally) the console."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path, prefix: str,
                 echo: Callable[[str], None] | None,
                 gpus_in_use: Callable[[list[int], float], list[int]] | None = None):
        self.started = time.time()
        self.gpus_in_use = gpus_in_use
        self.log = open(log_path, "a", encoding="utf-8", buffering=1)
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        self.thread = threading.Thread(target=self._pump, args=(prefix, echo), daemon=True)
        self.thread.start()

    def _pump(self, prefix: str, echo: Callable[[str], None] | None) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = redact_text(line)        # third-party lines too (MLflow prints its tracking URI)
            try:
                self.log.write(line)
            except OSError:                 # a full disk: keep draining the pipe, or the cell would block
                pass
            mark = line.find("[jsweep]") if echo else -1     # not always at the start: ranks share the pipe
            if mark >= 0:
                echo(f"{prefix} {line[mark + len('[jsweep]'):].strip()}")

    def still_needs(self, ids: list[int]) -> list[int]:
        """The scheduler's question: which of ``ids`` this cell still uses."""
        return self.gpus_in_use(ids, self.started) if self.gpus_in_use else ids

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None:
            self.thread.join(timeout=5)
            self.log.close()
        return rc

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the cell (already sent SIGTERM) until ``deadline`` (time.monotonic), then SIGKILL its
        process group. No second SIGTERM: it could land inside the cell's handling of the first, while
        it records KILLED."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait()


def eval_stage_gpus(cell_dir: Path, ids: list[int], since: float) -> list[int]:
    """GPUs a cell still uses. A multi-GPU cell evaluates in one process on its first GPU
    (jsweep.job.multi); once that process has marked its status (after ``since``, the start of this
    attempt, so a stale status of a killed attempt counts for nothing), the other GPUs are free."""
    status = _read_json(cell_dir / "status.json")
    if (len(ids) > 1 and status.get("status") == "RUNNING" and status.get("stage") == "eval"
            and float(status.get("time", 0)) >= since):
        return ids[:1]
    return ids


def survive_closed_output(echo: Callable[[str], None]) -> Callable[[str], None]:
    """``echo`` that does nothing once the console is gone (a closed terminal gives EIO, a closed pipe
    EPIPE): the launcher must go on stopping or finishing its cells."""
    def say(msg: str) -> None:
        try:
            echo(msg)
        except OSError:
            pass
    return say


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The sweep was stopped by a signal (Ctrl-C, SIGTERM, SIGHUP); its cells were stopped first."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Ctrl-C, SIGTERM (`kill`, a batch system's cancel or time limit) and SIGHUP (a closed terminal)
    stop the sweep and its cells. Without this, SIGTERM and SIGHUP would kill the launcher alone and
    leave its cells, each in a session of its own, running without it.

    The handler only records the signal and ignores further ones; ``check()``, called by the scheduler
    between its steps, raises Stopped. So a signal never lands inside starting or finishing a cell,
    and a second Ctrl-C during the clean-up is ignored. A signal that was already ignored when the
    sweep started (nohup, a background job's SIGINT) stays ignored."""

    def __init__(self) -> None:
        self.signum = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                    self.previous[sig] = signal.signal(sig, self._record)
        return self

    def _record(self, signum, frame) -> None:
        self.signum = self.signum or signum
        for sig in self.previous:
            signal.signal(sig, signal.SIG_IGN)

    def check(self) -> None:
        if self.signum:
            raise Stopped(self.signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def cell_env(gpus: list[int], port: int, uri: str, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)),
        "MASTER_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": env.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": env.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "20"),
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(threads)),
    })
    env.setdefault("NCCL_NVLS_ENABLE", "0")
    return env


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


OOM_ERRORS = {"OutOfMemoryError", "CUDAOutOfMemoryError"}


def retry_spec(spec: CellSpec) -> CellSpec | None:
    """After an out-of-memory error: micro-batch halved, accumulation doubled (same effective batch)."""
    t = spec.train
    if t.micro_batch_size <= 1:
        return None
    new = copy.deepcopy(spec)
    new.train.micro_batch_size = t.micro_batch_size // 2
    new.train.grad_accum = t.grad_accum * 2
    return new


def checkpoints(cell_dir: Path) -> list[Path]:
    """A cell's complete trainer checkpoints (with trainer_state.json), oldest first."""
    d = cell_dir / "checkpoints"
    done = [p for p in d.glob("checkpoint-*") if (p / "trainer_state.json").exists()] if d.is_dir() else []
    return sorted(done, key=lambda p: int(p.name.split("-")[-1]))      # complete checkpoints only


class SweepRunner:
    """Runs planned cells: skips finished ones, resumes interrupted ones, retries OOMs, isolates failures."""

    def __init__(self, cells: list[PlannedCell], sweep_dir: Path, grid: list[str] | None,
                 echo: Callable[[str], None]):
        for cell in cells:             # every secret of the grid is masked wherever it shows up later
            remember(secret_values(cell.spec.to_dict()))
        remember(secret_values({"grid": list(grid or [])}))
        self.cells, self.grid = cells, grid or []
        self.echo = survive_closed_output(lambda msg: echo(redact_text(msg)))
        self.first = cells[0].spec
        self.launcher = self.first.launcher
        self.sweep_dir = Path(sweep_dir).resolve()
        self.sweep_id = f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
        self.commit = ""
        self.outcomes: dict[int, CellOutcome] = {}
        self.runs: dict[int, str] = {}
        self.procs: dict[int, CellProcess] = {}
        self.attempts: dict[int, int] = {}
        self.pending_runs: dict[int, dict[str, Any]] = {}   # runs to create at `jsweep sync`
        self.total = len(cells)
        gpus = discover_gpus(self.launcher.gpus) if any(c.spec.resources.gpus > 0 for c in cells) else []
        self.gpus = gpus
        self.threads = max(1, (os.cpu_count() or 1) // self.launcher.concurrency)
        self.scheduler = Scheduler(gpus, cpu_slots=self.launcher.concurrency)

    @functools.cached_property
    def tracker(self) -> SweepTracker:
        """Connected on first use: a sweep whose cells are all finished never imports MLflow."""
        return SweepTracker(self.first.tracking.uri, self.first.tracking.experiment)

    def local_result(self, cell: PlannedCell) -> dict[str, Any] | None:
        """What the cell's own directory records of a finished, complete run: its run id, metrics, and
        whether it is fully logged to this sweep's tracking store (same store, empty journal). None if
        the directory records no such run."""
        status = _read_json(cell.cell_dir / "status.json")
        if status.get("status") != "FINISHED" or not status.get("complete"):
            return None
        meta = _read_json(cell.cell_dir / "cell.json")
        same_store = (meta.get("tracking_uri") == redact_text(resolve_uri(self.first.tracking.uri))
                      and meta.get("spec", {}).get("tracking", {}).get("experiment") == self.first.tracking.experiment)
        return {"run_id": meta.get("run_id"), "metrics": _read_json(cell.cell_dir / "metrics.json"),
                "logged": bool(meta.get("run_id") and same_store
                               and not len(Journal(cell.cell_dir / "tracking_journal.jsonl")))}

    def skip(self, cell: PlannedCell, done: dict[str, Any]) -> None:
        where = f"run {done['run_id']}" if done.get("logged", True) else "the cell directory (run `jsweep sync`)"
        self.echo(f"{self.prefix(cell)} skip: already finished in {where} - {cell.spec.label}")
        self.outcomes[cell.index] = CellOutcome(cell, "SKIPPED", 0.0, done.get("run_id"), metrics=done.get("metrics", {}))

    def gpus_in_use(self, cell: PlannedCell, ids: list[int], since: float) -> list[int]:
        keep = eval_stage_gpus(cell.cell_dir, ids, since)
        if len(keep) < len(ids):        # once: afterwards the scheduler holds only ``keep`` and asks no more
            free = ",".join(str(g) for g in ids if g not in keep)
            self.echo(f"{self.prefix(cell)} trained; evaluating on GPU {keep[0]}, GPU {free} free for the next cell")
        return keep

    def prefix(self, cell: PlannedCell) -> str:
        return f"[{cell.index + 1}/{self.total} {cell.cell_id[:8]}]"

    # ----------------------------------------------------------------------- what to run
    def rerun_requested(self, cell: PlannedCell) -> bool:
        r = self.launcher.rerun
        if isinstance(r, bool):
            return r
        return any(cell.cell_id.startswith(str(x)) for x in (r if isinstance(r, list) else [r]))

    def triage(self) -> list[PlannedCell]:
        """Skip cells already finished with complete results; archive them first when a rerun is asked."""
        finished = self.tracker.finished_cells({c.cell_id for c in self.cells})
        to_run = []
        for cell in self.cells:
            done = finished.get(cell.cell_id) or self.local_result(cell)
            if done and not self.rerun_requested(cell):
                self.skip(cell, done)
                continue
            if done and cell.cell_dir.exists():
                archive = cell.cell_dir.with_name(f"{cell.cell_id}.replaced-{datetime.now():%Y%m%d-%H%M%S}")
                cell.cell_dir.rename(archive)
                self.echo(f"{self.prefix(cell)} rerun: previous results kept in {archive}")
            to_run.append(cell)
        return to_run

    def child_run(self, cell: PlannedCell) -> tuple[str, bool]:
        """The MLflow run of a cell: the interrupted run it resumes, or a new child run."""
        meta = _read_json(cell.cell_dir / "cell.json")
        status = _read_json(cell.cell_dir / "status.json").get("status")
        if meta.get("run_id") and status != "FINISHED" and checkpoints(cell.cell_dir):
            try:
                self.tracker.reopen(meta["run_id"], {"jsweep.sweep_id": self.sweep_id,
                                                     "mlflow.parentRunId": self.tracker.parent_id})
                return meta["run_id"], True
            except Exception:  # noqa: BLE001 - the old run is gone: start a fresh one
                pass
        spec_dict = cell.spec.to_dict()
        new_run = {
            "name": redact_text(cell.spec.label), "parent_id": self.tracker.parent_id,
            "tags": {"jsweep.kind": "cell", "jsweep.sweep_id": self.sweep_id, "jsweep.cell_id": cell.cell_id,
                     "jsweep.git_commit": self.commit, "jsweep.cell_dir": str(cell.cell_dir),
                     "jsweep.dataset_license": cell.spec.dataset.license},
            "params": {"model": cell.spec.model.name, "dataset": cell.spec.dataset.name,
                       "method": cell.spec.method.name, "lr": repr(cell.spec.lr),
                       **flatten(redact({k: v for k, v in spec_dict.items() if k != "overrides"}), "cfg.")}}
        try:
            return self.tracker.create_child(new_run["name"], new_run["tags"], new_run["params"]), False
        except Exception as exc:  # noqa: BLE001 - the cell still runs; `jsweep sync` creates the run later
            self.echo(f"{self.prefix(cell)} warning: tracking unreachable ({type(exc).__name__}); the cell runs "
                      f"and keeps its results locally for `jsweep sync`")
            self.pending_runs[cell.index] = new_run
            return "", False

    # ----------------------------------------------------------------------- one cell
    def start(self, cell: PlannedCell, ids: list[int]) -> CellProcess:
        cell.cell_dir.mkdir(parents=True, exist_ok=True)
        attempt = self.attempts.get(cell.index, 0) + 1
        self.attempts[cell.index] = attempt
        if attempt == 1 or cell.index not in self.runs:
            run_id, resumed = self.child_run(cell)
            self.runs[cell.index] = run_id
        else:
            run_id, resumed = self.runs[cell.index], bool(checkpoints(cell.cell_dir))
        meta = {"cell_id": cell.cell_id, "sweep_id": self.sweep_id, "run_id": run_id or None,
                "pending_run": self.pending_runs.get(cell.index), "tracking_uri": self.tracker.uri,
                "gpus": ids, "attempt": attempt, "data": cell.data, "spec": cell.spec.to_dict()}
        write_json(cell.cell_dir / "cell.json", meta, ensure_ascii=False, default=str)     # secrets redacted
        # What the cell needs back (the tracking URI with its credentials) comes in its environment, never
        # from a file; credential keys of the config are not read by any cell code and stay masked.
        secrets = {k: v for k, v in secrets_in(json.loads(json.dumps(meta, default=str)), keys=False).items()
                   if not k.startswith("spec.overrides")}
        what = "resume" if resumed else ("retry" if attempt > 1 else "start")
        self.echo(f"{self.prefix(cell)} {what} {cell.spec.label}" + (f" on GPU {','.join(map(str, ids))}" if ids else ""))
        nproc = processes(cell.spec)
        port = 29500 + (cell.index % 500)               # a rendezvous port of its own for every cell
        distributed = nproc > 1 or cell.spec.distributed.backend == "deepspeed"   # ZeRO needs torchrun, even on 1 GPU
        cmd = ([sys.executable, "-m", "jsweep.job.multi", str(cell.cell_dir), str(nproc), str(port)] if distributed
               else [sys.executable, "-m", "jsweep.job.cell", str(cell.cell_dir)])
        if cell.spec.distributed.backend == "deepspeed":
            facts = [g for g in gpu_facts() if g["index"] in ids]
            write_json(cell.cell_dir / "deepspeed.json", deepspeed_config(cell.spec, uses_bf16(cell.spec, facts)))
        env = cell_env(ids, port, self.tracker.uri, max(1, self.threads // nproc))
        env.pop(SECRETS_ENV, None)
        if secrets:
            env[SECRETS_ENV] = json.dumps(secrets, default=str)
        proc = CellProcess(cmd, env,
                           cell.cell_dir / "cell.log", self.prefix(cell), self.echo if self.launcher.stream_logs else None,
                           functools.partial(self.gpus_in_use, cell) if distributed and len(ids) > 1 else None)
        self.procs[cell.index] = proc
        return proc

    def finish(self, fin: Finished) -> Job | None:
        cell: PlannedCell = fin.job.meta["cell"]
        run_id = self.runs[cell.index]
        status = _read_json(cell.cell_dir / "status.json")
        ok = fin.returncode == 0 and status.get("status") == "FINISHED"
        outcome = CellOutcome(cell, "FINISHED", fin.seconds, run_id, metrics=_read_json(cell.cell_dir / "metrics.json"))
        journal = Journal(cell.cell_dir / "tracking_journal.jsonl")
        if ok:
            self._tracked(journal, run_id, [{"op": "log_artifact", "path": str(cell.cell_dir / "cell.log"),
                                             "artifact_path": None}])
        else:
            error_class = status.get("error_class") or (f"killed by signal {-fin.returncode}" if fin.returncode < 0
                                                         else f"exit code {fin.returncode}")
            outcome.error = f"{error_class}: {status.get('error', '')}".strip(": ")
            killed = status.get("status") == "KILLED" or fin.returncode in (-signal.SIGTERM, -signal.SIGINT)
            outcome.status = "KILLED" if killed else "FAILED"
            retry = self.retry(cell, error_class)
            if retry is not None:
                return retry
            self._tracked(journal, run_id, fail_ops(error_class, status.get("error", ""), cell.cell_dir / "cell.log",
                                                    status=outcome.status))
            if self.launcher.fail_fast:
                self.scheduler.stop_launching = True
        self.outcomes[cell.index] = outcome
        self.echo(f"{self.prefix(cell)} {outcome.status} in {fin.seconds:.0f}s"
                  + (f" - {outcome.error}" if outcome.error else ""))
        return None

    def _tracked(self, journal: Journal, run_id: str, ops: list[dict[str, Any]]) -> None:
        """Apply launcher-side tracking calls for a cell; journal whatever cannot reach the server."""
        pending = list(ops)
        if run_id:
            while pending:
                try:
                    apply_op(self.tracker.client, run_id, pending[0])
                except Exception:  # noqa: BLE001 - kept for `jsweep sync`
                    break
                pending.pop(0)
        for op in pending:
            journal.append(op)

    def retry(self, cell: PlannedCell, error_class: str) -> Job | None:
        """Out-of-memory errors are retried with a halved micro-batch; other errors are not."""
        n = self.attempts.get(cell.index, 1)
        if error_class not in OOM_ERRORS or n > self.launcher.oom_retries:
            return None
        spec = retry_spec(cell.spec)
        if spec is None:
            return None
        t0, t1 = cell.spec.train, spec.train
        note = (f"micro_batch_size {t0.micro_batch_size}->{t1.micro_batch_size}, "
                f"grad_accum {t0.grad_accum}->{t1.grad_accum}")
        self.echo(f"{self.prefix(cell)} out of memory; retry {n}/{self.launcher.oom_retries} with {note}")
        self.tracker.set_tags(self.runs[cell.index], {f"jsweep.oom_retry.{n}": note, "jsweep.oom_retries": str(n)})
        cell.spec = spec
        return self.job(cell)

    def job(self, cell: PlannedCell) -> Job:
        need = cell.spec.resources.gpus if self.gpus else 0
        return Job(cell.cell_id, need, lambda ids, c=cell: self.start(c, ids), {"cell": cell})

    # ----------------------------------------------------------------------- the sweep
    def run(self) -> SweepResult:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        local = [self.local_result(cell) for cell in self.cells]
        if all(done and done["logged"] and not self.rerun_requested(cell) for cell, done in zip(self.cells, local)):
            # Everything already finished and fully logged: report it without touching the tracking store.
            for cell, done in zip(self.cells, local):
                self.skip(cell, done)
            result = SweepResult(self.sweep_id, self.sweep_dir, None, [self.outcomes[i] for i in sorted(self.outcomes)])
            write_summary(result)
            self.echo(format_summary(result))
            return result
        self.commit = git_commit()
        parent_id = self.tracker.start_parent(
            f"sweep {self.sweep_id}",
            tags={"jsweep.kind": "sweep", "jsweep.sweep_id": self.sweep_id, "jsweep.git_commit": self.commit,
                  "jsweep.version": __version__, "jsweep.sweep_dir": str(self.sweep_dir)},
            params={"grid": redact_text(" ".join(self.grid)) or "(single cell)", "n_cells": str(self.total)})
        self.echo(f"jsweep: sweep {self.sweep_id}: {self.total} cell(s); tracking {self.tracker.uri} "
                  f"(experiment '{self.first.tracking.experiment}', parent run {parent_id})")
        to_run = self.triage()
        interrupted = 0                 # the signal that stopped the sweep, if one did
        with StopSignals() as stop:     # signals ignored from the first one until the sweep is wound up
            self.scheduler.check = stop.check
            try:
                self.scheduler.run([self.job(c) for c in to_run], on_finish=self.finish)
            except KeyboardInterrupt as exc:
                interrupted = getattr(exc, "signum", signal.SIGINT)
                self.interrupt(interrupted)
            for cell in to_run:      # fail_fast: cells that never started are reported, not dropped
                self.outcomes.setdefault(cell.index, CellOutcome(cell, "NOT_RUN", 0.0, None,
                                                                 error="not started" if interrupted
                                                                 else "not started (launcher.fail_fast)"))
            result = SweepResult(self.sweep_id, self.sweep_dir, parent_id,
                                 [self.outcomes[i] for i in sorted(self.outcomes)])
            failed = result.failed
            skipped = sum(o.status == "SKIPPED" for o in result.outcomes)
            write_summary(result)
            self.echo(format_summary(result))
            report = self.report() if self.launcher.report and not interrupted else []
            self._tracked(Journal(self.sweep_dir / "tracking_journal.jsonl"), parent_id, [
                {"op": "set_tags", "tags": {"jsweep.cells_failed": str(len(failed)),
                                            "jsweep.cells_total": str(self.total), "jsweep.cells_skipped": str(skipped)}},
                *({"op": "log_artifact", "path": str(p), "artifact_path": "report"} for p in report),
                {"op": "set_terminated", "status": "KILLED" if interrupted else ("FAILED" if failed else "FINISHED")}])
        if interrupted:
            raise Stopped(interrupted)
        return result

    def report(self) -> list[Path]:
        """Write the sweep's report (jsweep.tools.report) and return its files; a report that cannot
        be written is a warning, never a failed sweep."""
        from jsweep.tools.report import write_report

        try:
            out, _ = write_report(self.sweep_dir)
        except Exception as exc:  # noqa: BLE001 - the results are safe; only the report is missing
            self.echo(f"jsweep: warning: no report written ({type(exc).__name__}: {exc})")
            return []
        self.echo(f"jsweep: report (ranked cells, per-axis means, plots): {out / 'report.md'}")
        return sorted(p for p in out.iterdir() if p.is_file())

    def interrupt(self, signum: int = signal.SIGINT, grace: float = 30.0) -> None:
        """Stop every running cell: SIGTERM to all at once (they record KILLED and exit), then SIGKILL
        what is left after ``grace`` seconds. Each is marked KILLED on its run."""
        name = signal.Signals(signum).name
        running = [(idx, proc) for idx, proc in self.procs.items() if proc.proc.poll() is None]
        for _, proc in running:          # first, before anything else can go wrong (a closed terminal)
            proc.signal_group(signal.SIGTERM)
        self.echo(f"jsweep: interrupted{'' if signum == signal.SIGINT else ' by ' + name}; stopping "
                  f"{len(running)} running cell(s) (further Ctrl-C is ignored until they stop) ...")
        deadline = time.monotonic() + grace
        for idx, proc in running:
            proc.wait_or_kill(deadline)
            cell = self.cells[idx]
            self.outcomes[idx] = CellOutcome(cell, "KILLED", 0.0, self.runs.get(idx), error=f"interrupted ({name})")
            self._tracked(Journal(cell.cell_dir / "tracking_journal.jsonl"), self.runs.get(idx, ""),
                          fail_ops("KeyboardInterrupt" if signum == signal.SIGINT else name,
                                   f"sweep interrupted ({name})", cell.cell_dir / "cell.log", status="KILLED"))
            proc.poll()


def run(cells: list[PlannedCell], sweep_dir: Path, *, grid: list[str] | None = None,
        echo: Callable[[str], None] = print) -> SweepResult:
    """Run planned cells, one process each, and return the outcome of every cell."""
    return SweepRunner(cells, sweep_dir, grid, echo).run()


def format_plan(cells: list[PlannedCell]) -> str:
    lines = [f"jsweep: {len(cells)} cell(s) planned (dry run: nothing launched)",
             f"  {'#':>3}  {'cell id':12}  {'data':16}  cell"]
    for c in cells:
        data = f"{c.data.get('n', '?')} ex {str(c.data.get('digest', ''))[:8]}" if c.data else "-"
        lines.append(f"  {c.index:>3}  {c.cell_id:12}  {data:16}  {c.spec.label}")
    return "\n".join(lines)


def write_summary(result: SweepResult) -> None:
    rows = [{"index": o.cell.index, "cell_id": o.cell.cell_id, "label": o.cell.spec.label,
             "overrides": list(o.cell.spec.overrides), "status": o.status,
             "seconds": round(o.seconds, 1), "run_id": o.run_id, "error": o.error,
             "log": str(o.cell.cell_dir / "cell.log"), "metrics": o.metrics} for o in result.outcomes]
    write_json(result.sweep_dir / "summary.json",
               {"sweep_id": result.sweep_id, "parent_run_id": result.parent_run_id, "cells": rows}, ensure_ascii=False)


def format_summary(result: SweepResult) -> str:
    keys = ["eval/loss", "llm_jp_eval/AVG", "jglue/AVG"]
    skipped = sum(o.status == "SKIPPED" for o in result.outcomes)
    lines = [f"\njsweep: sweep {result.sweep_id} summary ({len(result.outcomes) - len(result.failed)}/"
             f"{len(result.outcomes)} finished{f', {skipped} skipped as already done' if skipped else ''}) -> "
             f"{result.sweep_dir / 'summary.json'}"]
    header = f"  {'#':>3}  {'cell':8}  {'status':8}  {'time':>6}  " + "  ".join(f"{k:>15}" for k in keys) + "  cell"
    lines.append(header)
    for o in result.outcomes:
        vals = "  ".join(f"{o.metrics[k]:>15.4f}" if k in o.metrics else f"{'-':>15}" for k in keys)
        lines.append(f"  {o.cell.index:>3}  {o.cell.cell_id[:8]}  {o.status:8}  {o.seconds:>5.0f}s  {vals}  "
                     f"{o.cell.spec.label}")
    pending = sum(len(Journal(o.cell.cell_dir / "tracking_journal.jsonl")) for o in result.outcomes) + \
        len(Journal(result.sweep_dir / "tracking_journal.jsonl"))
    if pending:
        lines.append(f"  warning: {pending} tracking call(s) could not reach the tracking server; results are kept "
                     f"in the cell directories. Run `jsweep sync {result.outcomes[0].cell.spec.output_root}` "
                     f"once it is back.")
    for o in result.failed:
        lines.append(f"  FAILED cell {o.cell.index} ({o.cell.spec.label}): {o.error}\n"
                     f"         log: {o.cell.cell_dir / 'cell.log'}")
    return "\n".join(lines)
