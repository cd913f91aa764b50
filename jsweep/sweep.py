"""Plan and run a sweep: pre-flight every cell, then run each in its own process.

``plan`` turns typed cell specs into planned cells (ids, directories, data digests) and raises
one PreflightError listing every problem before anything launches. ``run`` creates the MLflow
parent run, starts one subprocess per cell through the scheduler, marks failed cells, prints a
summary, and returns it. No Hydra here: the Hydra launcher and the single-run path both call in.
"""

from __future__ import annotations

import copy
import errno
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jsweep import __version__, cellstate
from jsweep.distributed import check_resources, deepspeed_config, gpu_facts, processes, tool_path, uses_bf16
from jsweep.errors import JsweepError, LauncherError, PreflightError
from jsweep.eval.run import check_eval_data as _check_eval_data
from jsweep.eval.run import check_evaluators as _check_evaluators
from jsweep.executors import Launch
from jsweep.executors import for_launcher as executor_for
from jsweep.filecheck import _regular_file_problem, _text_problem
from jsweep.files import write_json
from jsweep.identity import cell_id as compute_cell_id
from jsweep.locking import FileLock, cell_lock_path, describe_holder
from jsweep.paths import check_output_root
from jsweep.redaction import ENV as SECRETS_ENV
from jsweep.redaction import redact_text, remember, secret_values, secrets_in
from jsweep.scheduler import Finished, Job, Scheduler
from jsweep.schema import CellSpec
from jsweep.tracking import Journal, SweepTracker, apply_op, fail_ops, git_commit, redact, resolve_uri
from jsweep.validate import validate_cell


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
    status: str  # FINISHED | FAILED | KILLED | SKIPPED | BUSY | NOT_RUN
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
            return (
                f"model {m.source} is not in the local hub cache and HF_HUB_OFFLINE=1 "
                f"(pre-fill the cache, or set model.source=/path/to/model)"
            )
    return None


def _files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if not p.is_dir() and not p.name.startswith("."))
    return [path]


def _check_data_files(spec: CellSpec) -> list[str]:
    """The local files of a dataset (and of a mixture's components), before any loader opens them:
    regular files only, UTF-8, JSON of a readable depth. Each problem names its file."""
    paths = [spec.dataset.path] + [
        c.get("path") for c in (spec.dataset.components or {}).values() if isinstance(c, dict)
    ]
    problems = []
    for raw in paths:
        if not raw:
            continue
        root = Path(os.path.expanduser(str(raw)))
        if not root.exists():
            continue  # reported by the data pre-flight
        if problem := _regular_file_problem(root):
            problems.append(problem)
            continue
        for f in _files_of(root):
            if problem := _text_problem(f):
                problems.append(problem)
    return problems


_check_output_root = check_output_root  # moved to jsweep.paths (compose checks it too)


def plan(specs: list[CellSpec]) -> list[PlannedCell]:
    """Validate every cell and its data; raise PreflightError with all problems at once."""
    from jsweep.data.load import preflight

    problems: list[str] = []
    planned: list[PlannedCell] = []
    data_cache: dict[str, Any] = {}
    eval_cache: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    executors: dict[str, Any] = {}  # one per launcher configuration: resources probed once
    roots: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.output_root not in roots:
            roots.add(spec.output_root)
            if problem := _check_output_root(spec.output_root):
                problems.append(problem)
        where = f"cell {i} ({spec.label})"
        for p in validate_cell(spec):
            problems.append(f"{where}: {p}")
        model_problem = _check_model(spec)
        if model_problem:
            problems.append(f"{where}: {model_problem}")
        problems.extend(f"{where}: {p}" for p in _check_evaluators(spec, eval_cache))
        problems.extend(f"{where}: {p}" for p in _check_eval_data(spec))
        try:  # the GPUs where the cell will run, probed once per executor
            key = repr(spec.launcher)
            gpus, found = (executors.get(key) or executors.setdefault(key, executor_for(spec.launcher))).preflight(spec)
        except JsweepError as exc:
            gpus, found = [], [str(exc)]
        problems.extend(f"{where}: {p}" for p in found)
        problems.extend(f"{where}: {p}" for p in check_resources(spec, gpus))
        if not gpus and spec.train.precision in ("bf16", "fp16"):
            problems.append(
                f"{where}: train.precision={spec.train.precision} needs a GPU, and none is visible "
                f"(training on CPU is fp32: set train.precision=auto or fp32)"
            )
        data: dict[str, Any] = {}
        key = json.dumps([spec.dataset.__dict__, spec.model.builtin], sort_keys=True, default=str)
        if key not in data_cache and (file_problems := _check_data_files(spec)):
            data_cache[key] = PreflightError(file_problems)
            problems.extend(f"{where}: dataset: {p}" for p in file_problems)
        try:
            if key not in data_cache:
                # Local data is read and validated now, so a bad record stops the sweep before any work.
                data_cache[key] = preflight(spec.dataset, builtin_model=spec.model.builtin)
            data = data_cache[key]
        except JsweepError as exc:
            data_cache[key] = exc
            problems.append(f"{where}: {exc}")
        except Exception as exc:  # an unexpected loader failure is still a pre-flight problem
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
        if isinstance(data_cache.get(key), Exception):
            data = {}
        cid = compute_cell_id(spec.to_dict(), {"data": data.get("digest"), "model_revision": spec.model.revision})
        if cid in seen:
            problems.append(f"{where}: duplicate of cell {seen[cid]} (same config, id {cid})")
        seen.setdefault(cid, i)
        cell_dir = Path(spec.output_root).resolve() / "cells" / cid
        planned.append(PlannedCell(i, spec, cid, cell_dir, data))
    problems.extend(same_data_different_n(planned))
    if problems:
        raise PreflightError(problems)
    return planned


def same_data_different_n(planned: list[PlannedCell]) -> list[str]:
    """Cells that differ only in ``dataset.n`` but train on the same records (n beyond a shipped
    fixture, capped): labelled as different sizes, they would be identical runs."""
    groups: dict[str, PlannedCell] = {}
    out = []
    for cell in planned:
        d = cell.spec.to_dict()
        d.get("dataset", {}).pop("n", None)
        d.pop("overrides", None)
        key = json.dumps([d, cell.data.get("digest")], sort_keys=True, default=str)
        first = groups.setdefault(key, cell)
        if first is not cell and cell.data.get("digest") and first.spec.dataset.n != cell.spec.dataset.n:
            out.append(
                f"cell {cell.index} ({cell.spec.label}): dataset.n={cell.spec.dataset.n} gives the same "
                f"{cell.data.get('n')} records as dataset.n={first.spec.dataset.n} (cell {first.index}); "
                f"the data holds only {cell.data.get('n')}: choose sizes up to that"
            )
    return out


# --------------------------------------------------------------------------- running


def eval_stage_gpus(cell_dir: Path, ids: list[int], since: float) -> list[int]:
    """GPUs a cell still uses. A multi-GPU cell evaluates in one process on its first GPU
    (jsweep.job.multi); once that process has marked its status (after ``since``, the start of this
    attempt, so a stale status of a killed attempt counts for nothing), the other GPUs are free."""
    status = _read_json(cell_dir / cellstate.STATUS)
    if (
        len(ids) > 1
        and status.get("status") == "RUNNING"
        and status.get("stage") == "eval"
        and float(status.get("time", 0)) >= since
    ):
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

    def __enter__(self) -> StopSignals:
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


def cell_env(gpus: list[int], uri: str, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)),
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": env.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": env.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "20"),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(threads)),
            "PATH": tool_path(),  # the environment's own tools (ninja for DeepSpeed's CPU Adam) first
        }
    )
    env.setdefault("NCCL_NVLS_ENABLE", "0")
    return env


_read_json = cellstate.read_json


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


checkpoints = cellstate.checkpoints


def damage(cell: PlannedCell) -> str | None:
    """What is wrong with the results of a cell its directory records as FINISHED: metrics.json missing
    or not a JSON object, the saved model gone. None when they are whole (or the cell is not finished)."""
    d = cell.cell_dir
    if _read_json(d / cellstate.STATUS).get("status") != "FINISHED":
        return None
    try:
        metrics = json.loads((d / cellstate.METRICS).read_text(encoding="utf-8"))
        if not isinstance(metrics, dict):
            return "metrics.json is not a JSON object"
    except FileNotFoundError:
        return "metrics.json is missing"
    except (OSError, ValueError) as exc:
        return f"metrics.json is corrupt ({type(exc).__name__})"
    if cell.spec.train.save_model:
        model = d / "model"
        if not ((model / "config.json").is_file() or (model / "adapter_config.json").is_file()):
            return "the saved model (model/) is missing"
    return None


class SweepRunner:
    """Runs planned cells: skips finished ones, resumes interrupted ones, retries OOMs, isolates failures."""

    def __init__(self, cells: list[PlannedCell], sweep_dir: Path, grid: list[str] | None, echo: Callable[[str], None]):
        for cell in cells:  # every secret of the grid is masked wherever it shows up later
            remember(secret_values(cell.spec.to_dict()))
        remember(secret_values({"grid": list(grid or [])}))
        from jsweep.redaction import remember_env_credentials

        remember_env_credentials()  # MLFLOW_TRACKING_PASSWORD / _TOKEN of a remote tracking server
        self.cells, self.grid = cells, grid or []
        self.echo = survive_closed_output(lambda msg: echo(redact_text(msg)))
        self.first = cells[0].spec
        self.launcher = self.first.launcher
        self.sweep_dir = Path(sweep_dir).resolve()
        self.sweep_id = f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
        self.commit = ""
        self.outcomes: dict[int, CellOutcome] = {}
        self.runs: dict[int, str] = {}
        self.procs: dict[int, Any] = {}  # cell handles (jsweep.executors.CellHandle)
        self.attempts: dict[int, int] = {}
        self.pending_runs: dict[int, dict[str, Any]] = {}  # runs to create at `jsweep sync`
        self.locks: dict[int, FileLock] = {}  # cell locks this sweep holds
        self.launcher_lock: FileLock | None = None
        self.started_cells = 0
        self.total = len(cells)
        self.executor = executor_for(self.launcher)
        gpus = self.executor.gpus(cells)
        self.gpus = gpus
        self.threads = max(1, (os.cpu_count() or 1) // self.launcher.concurrency)
        self.scheduler = Scheduler(gpus, cpu_slots=self.executor.slots())

    @functools.cached_property
    def tracker(self) -> SweepTracker:
        """Connected on first use: a sweep whose cells are all finished never imports MLflow."""
        return SweepTracker(self.first.tracking.uri, self.first.tracking.experiment)

    def local_result(self, cell: PlannedCell) -> dict[str, Any] | None:
        """What the cell's own directory records of a finished, complete run: its run id, metrics, and
        whether it is fully logged to this sweep's tracking store (same store, empty journal). None if
        the directory records no such run."""
        status = _read_json(cell.cell_dir / cellstate.STATUS)
        if status.get("status") != "FINISHED" or not status.get("complete") or damage(cell):
            return None
        meta = _read_json(cell.cell_dir / cellstate.CELL)
        same_store = (
            meta.get("tracking_uri") == redact_text(resolve_uri(self.first.tracking.uri))
            and meta.get("spec", {}).get("tracking", {}).get("experiment") == self.first.tracking.experiment
        )
        return {
            "run_id": meta.get("run_id"),
            "metrics": _read_json(cell.cell_dir / cellstate.METRICS),
            "logged": bool(meta.get("run_id") and same_store and not len(Journal(cell.cell_dir / cellstate.JOURNAL))),
        }

    def skip(self, cell: PlannedCell, done: dict[str, Any]) -> None:
        where = f"run {done['run_id']}" if done.get("logged", True) else "the cell directory (run `jsweep sync`)"
        self.echo(f"{self.prefix(cell)} skip: already finished in {where} - {cell.spec.label}")
        self.outcomes[cell.index] = CellOutcome(
            cell, "SKIPPED", 0.0, done.get("run_id"), metrics=done.get("metrics", {})
        )

    def gpus_in_use(self, cell: PlannedCell, ids: list[int], since: float) -> list[int]:
        keep = eval_stage_gpus(cell.cell_dir, ids, since)
        if len(keep) < len(ids):  # once: afterwards the scheduler holds only ``keep`` and asks no more
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
        """Lock each cell, then skip the ones already finished with complete results (archived first when a
        rerun is asked). A cell locked by another process (another sweep, or a cell whose launcher died) is
        reported busy and left alone. A finished cell whose results are damaged runs again."""
        finished = self.tracker.finished_cells({c.cell_id for c in self.cells})
        to_run = []
        for cell in self.cells:
            lock = FileLock(cell_lock_path(cell.cell_dir))
            if not lock.acquire(
                sweep_id=self.sweep_id, sweep_dir=str(self.sweep_dir), cell=redact_text(cell.spec.label)
            ):
                self.busy(cell, lock.holder())
                continue
            # Decided under the lock: another sweep may have finished the cell since the search above.
            broken = damage(cell)
            done = self.local_result(cell) or (finished.get(cell.cell_id) if not broken else None)
            if done and not self.rerun_requested(cell):
                lock.release()
                self.skip(cell, done)
                continue
            if broken:
                old = _read_json(cell.cell_dir / cellstate.CELL).get("run_id") or (
                    finished.get(cell.cell_id) or {}
                ).get("run_id")
                archive = cell.cell_dir.with_name(f"{cell.cell_id}.damaged-{datetime.now():%Y%m%d-%H%M%S}")
                cell.cell_dir.rename(archive)
                self.echo(
                    f"{self.prefix(cell)} finished earlier, but its results are damaged ({broken}): running it "
                    f"again; the damaged directory is kept as {archive}"
                )
                if old:
                    self._tracked(
                        Journal(self.sweep_dir / cellstate.JOURNAL),
                        old,
                        [
                            {
                                "op": "set_tags",
                                "tags": {
                                    "jsweep.complete": "false",
                                    "jsweep.damaged": broken,
                                    "jsweep.replaced_by_sweep": self.sweep_id,
                                },
                            }
                        ],
                    )
            elif done and cell.cell_dir.exists():
                archive = cell.cell_dir.with_name(f"{cell.cell_id}.replaced-{datetime.now():%Y%m%d-%H%M%S}")
                cell.cell_dir.rename(archive)
                self.echo(f"{self.prefix(cell)} rerun: previous results kept in {archive}")
            self.locks[cell.index] = lock
            to_run.append(cell)
        return to_run

    def open_run_of(self, cell: PlannedCell) -> str | None:
        """The newest run of this cell (same directory) left RUNNING or KILLED, if the store has one."""
        try:
            runs = self.tracker.client.search_runs(
                [self.tracker.experiment_id],
                f"tags.`jsweep.cell_id` = '{cell.cell_id}'",
                max_results=50,
                order_by=["attributes.start_time DESC"],
            )
        except Exception:  # an unreachable or failing store: nothing to resume, the cell starts a fresh run
            return None
        for run in runs:
            if run.data.tags.get("jsweep.cell_dir") == str(cell.cell_dir) and run.info.status in ("RUNNING", "KILLED"):
                return run.info.run_id
        return None

    def busy(self, cell: PlannedCell, holder: dict[str, Any]) -> None:
        where = describe_holder(holder)
        self.echo(f"{self.prefix(cell)} busy: already running in {where}; not started here - {cell.spec.label}")
        self.outcomes[cell.index] = CellOutcome(cell, "BUSY", 0.0, None, error=f"busy: running in {where}")

    def child_run(self, cell: PlannedCell) -> tuple[str, bool]:
        """The MLflow run of a cell: the interrupted run it resumes, or a new child run.

        The cell's earlier run is continued when that attempt left a checkpoint, or when it did not fail
        on its own: it was killed, or it is still marked RUNNING (its launcher died, or the disk filled).
        A cell that failed on its own with nothing to resume gets a fresh run."""
        meta = _read_json(cell.cell_dir / cellstate.CELL)
        status = _read_json(cell.cell_dir / cellstate.STATUS).get("status")
        if not meta.get("run_id"):  # the launcher could not record it (a full disk): ask the store
            meta["run_id"] = self.open_run_of(cell)
        if meta.get("run_id") and status != "FINISHED":
            try:
                previous = self.tracker.status(meta["run_id"])
            except Exception:  # the old run is gone: start a fresh one
                previous = None
            if (
                previous
                and previous != "FINISHED"
                and (
                    checkpoints(cell.cell_dir)
                    or status in (None, "RUNNING", "KILLED")
                    or previous in ("RUNNING", "KILLED")
                )
            ):
                try:
                    self.tracker.reopen(
                        meta["run_id"], {"jsweep.sweep_id": self.sweep_id, "mlflow.parentRunId": self.tracker.parent_id}
                    )
                    return meta["run_id"], bool(checkpoints(cell.cell_dir))
                except Exception:  # the old run is gone: start a fresh one
                    pass
        history = cell.cell_dir / cellstate.HISTORY
        if history.exists():  # the curves of an earlier run stay with it, not with the new run
            history.rename(
                history.with_name(f"history.{(meta.get('run_id') or 'unlogged')[:8]}-{int(time.time())}.jsonl")
            )
        from jsweep.runview import cell_params, run_name

        spec_dict = cell.spec.to_dict()
        fixed = [
            o for o in self.grid if not ("," in o.partition("=")[2] and not o.partition("=")[2].startswith(("[", "{")))
        ]
        new_run = {
            "name": redact_text(run_name(cell.spec.overrides, fixed)),
            "parent_id": self.tracker.parent_id,
            "tags": {
                "jsweep.kind": "cell",
                "jsweep.sweep_id": self.sweep_id,
                "jsweep.cell_id": cell.cell_id,
                "jsweep.git_commit": self.commit,
                "jsweep.cell_dir": str(cell.cell_dir),
                "jsweep.dataset_license": cell.spec.dataset.license,
            },
            "params": cell_params(redact(spec_dict), [o.partition("=")[0] for o in cell.spec.overrides]),
        }
        try:
            return self.tracker.create_child(new_run["name"], new_run["tags"], new_run["params"]), False
        except Exception as exc:  # the cell still runs; `jsweep sync` creates the run later
            self.echo(
                f"{self.prefix(cell)} warning: tracking unreachable ({type(exc).__name__}); the cell runs "
                f"and keeps its results locally for `jsweep sync`"
            )
            self.pending_runs[cell.index] = new_run
            return "", False

    # ----------------------------------------------------------------------- one cell
    def start(self, cell: PlannedCell, ids: list[int]) -> Any:
        self.started_cells += 1
        cell.cell_dir.mkdir(parents=True, exist_ok=True)
        handle = self.reattach(cell)
        if handle is not None:
            return handle
        attempt = self.attempts.get(cell.index, 0) + 1
        self.attempts[cell.index] = attempt
        if attempt == 1 or cell.index not in self.runs:
            run_id, resumed = self.child_run(cell)
            self.runs[cell.index] = run_id
        else:
            run_id, resumed = self.runs[cell.index], bool(checkpoints(cell.cell_dir))
        _launcher_fault(self.started_cells, cell.cell_dir)
        meta = {
            "cell_id": cell.cell_id,
            "sweep_id": self.sweep_id,
            "run_id": run_id or None,
            "pending_run": self.pending_runs.get(cell.index),
            "tracking_uri": self.tracker.uri,
            "gpus": ids,
            "attempt": attempt,
            "data": cell.data,
            "spec": cell.spec.to_dict(),
        }
        write_json(cell.cell_dir / cellstate.CELL, meta, ensure_ascii=False, default=str)  # secrets redacted
        # What the cell needs back (the tracking URI with its credentials) comes in its environment, never
        # from a file; credential keys of the config are not read by any cell code and stay masked.
        secrets = {
            k: v
            for k, v in secrets_in(json.loads(json.dumps(meta, default=str)), keys=False).items()
            if not k.startswith("spec.overrides")
        }
        what = "resume" if resumed else ("retry" if attempt > 1 else "start")
        self.echo(
            f"{self.prefix(cell)} {what} {cell.spec.label}" + (f" on GPU {','.join(map(str, ids))}" if ids else "")
        )
        nproc = processes(cell.spec)
        distributed = nproc > 1 or cell.spec.distributed.backend == "deepspeed"  # ZeRO needs torchrun, even on 1 GPU
        cmd = (
            [sys.executable, "-m", "jsweep.job.multi", str(cell.cell_dir), str(nproc)]
            if distributed
            else [sys.executable, "-m", "jsweep.job.cell", str(cell.cell_dir)]
        )
        if cell.spec.distributed.backend == "deepspeed":
            ds_path = cell.cell_dir / "deepspeed.json"
            if ids or not self.executor.preflight(cell.spec)[0]:  # this machine's GPUs, or none at all
                facts = [g for g in gpu_facts() if g["index"] in ids]
                write_json(ds_path, deepspeed_config(cell.spec, uses_bf16(cell.spec, facts)))
            else:  # GPUs allocated where the cell runs (a Slurm job): jsweep.job.multi writes it there
                ds_path.unlink(missing_ok=True)
        env = cell_env(ids, self.tracker.uri, max(1, self.threads // nproc))
        env.pop(SECRETS_ENV, None)
        if secrets:
            env[SECRETS_ENV] = json.dumps(secrets, default=str)
        lock = self.locks.get(cell.index)
        proc = self.executor.start(
            Launch(
                cell.cell_dir,
                cmd,
                env,
                ids,
                cell.spec.resources.gpus,
                f"jsweep-{cell.cell_id[:8]}",
                self.prefix(cell),
                self.echo if self.launcher.stream_logs else None,
                lock.fd if lock and lock.fd is not None else None,
                functools.partial(self.gpus_in_use, cell) if distributed and len(ids) > 1 else None,
                {"processes": nproc},
            )
        )
        info = proc.info()
        if lock:
            lock.note(cell_pid=proc.pid, run_id=run_id or None, **info)
        if info:
            self.echo(f"{self.prefix(cell)} " + ", ".join(f"{k.rpartition('.')[2]} {v}" for k, v in info.items()))
            self._tracked(Journal(cellstate.journal_path(cell.cell_dir)), run_id, [{"op": "set_tags", "tags": info}])
        self.procs[cell.index] = proc
        return proc

    def reattach(self, cell: PlannedCell) -> Any:
        """A cell still queued or running where its executor runs it (an earlier launcher of this sweep was
        stopped): followed again in its run, never submitted twice."""
        handle = self.executor.reattach(
            cell.cell_dir, self.echo if self.launcher.stream_logs else None, self.prefix(cell)
        )
        if handle is None:
            return None
        meta = cellstate.meta(cell.cell_dir)
        run_id = meta.get("run_id") or ""
        if run_id:
            try:
                self.tracker.reopen(
                    run_id, {"jsweep.sweep_id": self.sweep_id, "mlflow.parentRunId": self.tracker.parent_id}
                )
            except Exception:  # the cell logs to its run itself; `jsweep sync` catches up
                pass
        self.runs[cell.index] = run_id
        self.attempts[cell.index] = int(meta.get("attempt") or 1)
        info = handle.info()
        self.echo(
            f"{self.prefix(cell)} reattached to {', '.join(f'{k.rpartition(chr(46))[2]} {v}' for k, v in info.items())}"
            f" - {cell.spec.label}"
        )
        lock = self.locks.get(cell.index)
        if lock:
            lock.note(run_id=run_id or None, **info)
        self.procs[cell.index] = handle
        return handle

    def finish(self, fin: Finished) -> Job | None:
        cell: PlannedCell = fin.job.meta["cell"]
        run_id = self.runs[cell.index]
        status = _read_json(cell.cell_dir / cellstate.STATUS)
        ok = fin.returncode == 0 and status.get("status") == "FINISHED"
        outcome = CellOutcome(
            cell, "FINISHED", fin.seconds, run_id, metrics=_read_json(cell.cell_dir / cellstate.METRICS)
        )
        journal = Journal(cell.cell_dir / cellstate.JOURNAL)
        handle = self.procs.get(cell.index)
        if handle is not None and (where := handle.info()):
            self._tracked(journal, run_id, [{"op": "set_tags", "tags": where}])
        if getattr(self.executor, "replays_journals", False) and run_id and len(journal):
            self.replay(cell, run_id, journal)
        if ok:
            from jsweep.runview import headline_metrics

            now = int(time.time() * 1000)
            headline = [[k, v, now, 0] for k, v in headline_metrics(outcome.metrics or {}).items()]
            self._tracked(
                journal,
                run_id,
                [
                    *([{"op": "log_batch", "metrics": headline}] if headline else []),
                    {"op": "log_artifact", "path": str(cell.cell_dir / cellstate.LOG), "artifact_path": None},
                ],
            )
        else:
            error_class = status.get("error_class") or (
                f"killed by signal {-fin.returncode}" if fin.returncode < 0 else f"exit code {fin.returncode}"
            )
            outcome.error = f"{error_class}: {status.get('error', '')}".strip(": ")
            killed = status.get("status") == "KILLED" or fin.returncode in (-signal.SIGTERM, -signal.SIGINT)
            outcome.status = "KILLED" if killed else "FAILED"
            retry = self.retry(cell, error_class)
            if retry is not None:
                return retry
            self._tracked(
                journal,
                run_id,
                fail_ops(error_class, status.get("error", ""), cell.cell_dir / cellstate.LOG, status=outcome.status),
            )
            if self.launcher.fail_fast:
                self.scheduler.stop_launching = True
        self.outcomes[cell.index] = outcome
        self.release(cell.index)
        self.echo(
            f"{self.prefix(cell)} {outcome.status} in {fin.seconds:.0f}s"
            + (f" - {outcome.error}" if outcome.error else "")
        )
        return None

    def replay(self, cell: PlannedCell, run_id: str, journal: Journal) -> None:
        """Log what the cell journaled (it ran where the tracking server cannot be reached) from here, as
        `jsweep sync` would; what still cannot be logged stays journaled for `jsweep sync`."""
        from jsweep.tools.sync import _replay

        try:
            done, left = _replay(self.tracker, run_id, journal)
        except Exception as exc:  # kept for `jsweep sync`
            self.echo(f"{self.prefix(cell)} warning: its tracking journal was not replayed ({type(exc).__name__})")
            return
        self.echo(
            f"{self.prefix(cell)} logged {done} journaled tracking call(s) from the login node"
            + (f"; {left} left for `jsweep sync`" if left else "")
        )

    def _tracked(self, journal: Journal, run_id: str, ops: list[dict[str, Any]], journal_errors: bool = True) -> None:
        """Apply launcher-side tracking calls for a cell; journal whatever cannot reach the server (after a
        launcher error, ``journal_errors=False``: a journal that cannot be written either is given up)."""
        pending = list(ops)
        if run_id:
            while pending:
                try:
                    apply_op(self.tracker.client, run_id, pending[0])
                except Exception:  # kept for `jsweep sync`
                    break
                pending.pop(0)
        for op in pending:
            try:
                journal.append(op)
            except OSError:
                if journal_errors:
                    raise
                break

    def retry(self, cell: PlannedCell, error_class: str) -> Job | None:
        """Out-of-memory errors are retried with a halved micro-batch; other errors are not."""
        n = self.attempts.get(cell.index, 1)
        if error_class not in OOM_ERRORS or n > self.launcher.oom_retries:
            return None
        spec = retry_spec(cell.spec)
        if spec is None:
            return None
        t0, t1 = cell.spec.train, spec.train
        note = (
            f"micro_batch_size {t0.micro_batch_size}->{t1.micro_batch_size}, "
            f"grad_accum {t0.grad_accum}->{t1.grad_accum}"
        )
        self.echo(f"{self.prefix(cell)} out of memory; retry {n}/{self.launcher.oom_retries} with {note}")
        self.tracker.set_tags(self.runs[cell.index], {f"jsweep.oom_retry.{n}": note, "jsweep.oom_retries": str(n)})
        cell.spec = spec
        return self.job(cell)

    def job(self, cell: PlannedCell) -> Job:
        need = cell.spec.resources.gpus if self.gpus else 0
        return Job(cell.cell_id, need, functools.partial(self.start, cell), {"cell": cell})

    # ----------------------------------------------------------------------- the sweep
    def run(self) -> SweepResult:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        local = [self.local_result(cell) for cell in self.cells]
        if all(done and done["logged"] and not self.rerun_requested(cell) for cell, done in zip(self.cells, local)):
            # Everything already finished and fully logged: report it without touching the tracking store.
            for cell, done in zip(self.cells, local):
                assert done is not None  # all() above
                self.skip(cell, done)
            result = SweepResult(self.sweep_id, self.sweep_dir, None, [self.outcomes[i] for i in sorted(self.outcomes)])
            write_summary(result)
            self.echo(format_summary(result))
            return result
        self.hold_launcher_lock()
        try:
            return self._run()
        finally:
            for idx in list(self.locks):
                self.release(idx)
            if self.launcher_lock:
                self.launcher_lock.release()

    def hold_launcher_lock(self) -> None:
        """The sweep directory's launcher.lock, held while this launcher lives (a later sweep that finds it
        free while the parent run is RUNNING knows the launcher died). Two sweeps started in the same second
        share Hydra's sweep directory: the second one takes a directory of its own."""
        lock = FileLock(self.sweep_dir / "launcher.lock")
        if not lock.acquire(sweep_id=self.sweep_id):
            self.sweep_dir = self.sweep_dir.with_name(f"{self.sweep_dir.name}-{os.getpid()}")
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.sweep_dir / "launcher.lock")
            lock.acquire(blocking=True, sweep_id=self.sweep_id)
        self.launcher_lock = lock

    def _run(self) -> SweepResult:
        self.commit = git_commit()
        self.reap_stale()
        parent_id = self.tracker.start_parent(
            f"sweep {self.sweep_id}",
            tags={
                "jsweep.kind": "sweep",
                "jsweep.sweep_id": self.sweep_id,
                "jsweep.git_commit": self.commit,
                "jsweep.version": __version__,
                "jsweep.sweep_dir": str(self.sweep_dir),
            },
            params={"grid": redact_text(" ".join(self.grid)) or "(single cell)", "n_cells": str(self.total)},
        )
        self.echo(
            f"jsweep: sweep {self.sweep_id}: {self.total} cell(s); tracking {self.tracker.uri} "
            f"(experiment '{self.first.tracking.experiment}', parent run {parent_id})"
        )
        interrupted = 0  # the signal that stopped the sweep, if one did
        error: BaseException | None = None
        with StopSignals() as stop:  # signals ignored from the first one until the sweep is wound up
            self.scheduler.check = stop.check
            to_run: list[PlannedCell] = []
            try:
                to_run = self.triage()
                self.scheduler.run([self.job(c) for c in to_run], on_finish=self.finish)
            except KeyboardInterrupt as exc:
                interrupted = getattr(exc, "signum", signal.SIGINT)
                self.interrupt(interrupted)
            except Exception as exc:  # a launcher error (a full disk...): stop and record, then report
                error = exc
                self.abandon(exc)
            for cell in to_run:  # fail_fast: cells that never started are reported, not dropped
                self.outcomes.setdefault(
                    cell.index,
                    CellOutcome(
                        cell,
                        "NOT_RUN",
                        0.0,
                        self.runs.get(cell.index),
                        error="not started" if interrupted or error else "not started (launcher.fail_fast)",
                    ),
                )
            result = SweepResult(
                self.sweep_id, self.sweep_dir, parent_id, [self.outcomes[i] for i in sorted(self.outcomes)]
            )
            failed = result.failed
            skipped = sum(o.status == "SKIPPED" for o in result.outcomes)
            if error is None:
                write_summary(result)
                self.echo(format_summary(result))
            report = self.report() if self.launcher.report and not interrupted and error is None else []
            if error is None:
                self.share_view(result)
            end_tags = {
                "jsweep.cells_failed": str(len(failed)),
                "jsweep.cells_total": str(self.total),
                "jsweep.cells_skipped": str(skipped),
            }
            if error is not None:
                end_tags.update({"jsweep.error_class": type(error).__name__, "jsweep.error": str(error)[:1000]})
            self._tracked(
                Journal(self.sweep_dir / cellstate.JOURNAL),
                parent_id,
                [
                    {"op": "set_tags", "tags": end_tags},
                    *self.summary_ops(report),
                    *({"op": "log_artifact", "path": str(p), "artifact_path": "report"} for p in report),
                    {
                        "op": "set_terminated",
                        "status": "KILLED"
                        if interrupted
                        else ("FAILED" if failed or error is not None else "FINISHED"),
                    },
                ],
                journal_errors=error is None,
            )
        if interrupted:
            raise Stopped(interrupted)
        if error is not None:
            raise LauncherError(
                f"the launcher failed ({type(error).__name__}: {error}); its cells were stopped and their runs "
                f"marked KILLED (parent run {parent_id} FAILED). Run the same sweep again to resume them."
            ) from error
        return result

    def share_view(self, result: SweepResult) -> None:
        """Save the runs-table view of this sweep (its cells, axes and headline scores as columns) on the
        experiment, and print its MLflow UI link; a tracking store that is down only loses the link."""
        from jsweep.runview import LATEST_VIEW, SHARED_VIEW_TAG, headline_metrics, shared_view, view_url

        keys = {k for o in result.outcomes for k in headline_metrics(o.metrics or {})}
        axes = sorted({o.partition("=")[0] for c in self.cells for o in c.spec.overrides})
        view = json.dumps(shared_view(self.sweep_id, axes, keys))
        try:
            exp_id = self.tracker.experiment_id
            for key in (self.sweep_id, LATEST_VIEW):
                self.tracker.client.set_experiment_tag(exp_id, SHARED_VIEW_TAG + key, view)
        except Exception:  # the results are logged; only the saved view is missing
            return
        self.echo(f"jsweep: compare the cells (make ui): {view_url('http://127.0.0.1:5000', exp_id, self.sweep_id)}")

    def summary_ops(self, report: list[Path]) -> list[dict[str, Any]]:
        """The parent run's aggregate of the report: each condition's mean ± interval over its replicates."""
        from jsweep.tools.report import parent_metrics

        path = next((p for p in report if p.name == "conditions.json"), None)
        if path is None:
            return []
        summary = json.loads(path.read_text(encoding="utf-8"))
        now = int(time.time() * 1000)
        tags = {"jsweep.score": summary["metric"], "jsweep.winner": summary["winner"] or f"none ({summary['why']})"}
        return [
            {"op": "log_batch", "metrics": [[k, v, now, 0] for k, v in parent_metrics(summary).items()]},
            {"op": "set_tags", "tags": tags},
        ]

    def abandon(self, exc: BaseException) -> None:
        """After a launcher error: stop running cells, and mark every run this sweep opened KILLED (the
        cells did not fail; the next run of the sweep continues them in the same runs)."""
        self.interrupt(signal.SIGTERM, reason=f"launcher error ({type(exc).__name__})")
        for idx, run_id in list(self.runs.items()):
            if idx in self.outcomes or not run_id:
                continue
            cell = self.cells[idx]
            self.outcomes[idx] = CellOutcome(cell, "KILLED", 0.0, run_id, error=f"launcher error: {exc}")
            ops: list[dict[str, Any]] = [
                {
                    "op": "set_tags",
                    "tags": {
                        "jsweep.error_class": "LauncherError",
                        "jsweep.error": f"{type(exc).__name__}: {exc}"[:1000],
                    },
                },
                {"op": "set_terminated", "status": "KILLED"},
            ]
            self._tracked(Journal(cell.cell_dir / cellstate.JOURNAL), run_id, ops, journal_errors=False)

    def reap_stale(self) -> None:
        """Parent runs of this experiment left RUNNING by a launcher that died (kill -9, a crash): its
        launcher.lock is free. They are marked KILLED, and so are their RUNNING child runs, except those
        of cells still alive on their own (they hold their cell lock, and end their run themselves)."""
        client, exp = self.tracker.client, self.tracker.experiment_id
        try:
            parents = client.search_runs(
                [exp], "attributes.status = 'RUNNING' and tags.`jsweep.kind` = 'sweep'", max_results=500
            )
        except Exception:  # best effort; the sweep itself does not depend on it
            return
        for parent in parents:
            sweep_dir = parent.data.tags.get("jsweep.sweep_dir")
            lock = FileLock(Path(sweep_dir) / "launcher.lock") if sweep_dir else None
            if lock is None or not lock.path.exists() or lock.held_elsewhere():
                continue  # alive, or not a sweep of this machine: not ours to judge
            note = {
                "jsweep.error_class": "LauncherDied",
                "jsweep.error": f"the sweep's launcher ended without closing this run; found by sweep {self.sweep_id}",
            }
            try:
                children = client.search_runs(
                    [exp],
                    f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and attributes.status = 'RUNNING'",
                    max_results=5000,
                )
                orphans = 0
                for child in children:
                    cell_dir = child.data.tags.get("jsweep.cell_dir")
                    if cell_dir and (
                        FileLock(cell_lock_path(Path(cell_dir))).held_elsewhere() or self.executor.alive(Path(cell_dir))
                    ):
                        orphans += 1
                        continue
                    self.tracker.set_tags(child.info.run_id, note)
                    client.set_terminated(child.info.run_id, "KILLED")
                self.tracker.set_tags(parent.info.run_id, note)
                client.set_terminated(parent.info.run_id, "KILLED")
            except Exception:  # best effort: a store error leaves that old sweep as it was, this one carries on
                continue
            self.echo(
                f"jsweep: sweep {parent.data.tags.get('jsweep.sweep_id', '?')} ended without its launcher: "
                f"parent run {parent.info.run_id} and {len(children) - orphans} running cell run(s) marked KILLED"
                + (f" ({orphans} cell(s) still running on their own)" if orphans else "")
            )

    def release(self, idx: int) -> None:
        lock = self.locks.pop(idx, None)
        if lock:
            lock.release()

    def report(self) -> list[Path]:
        """Write the sweep's report (jsweep.tools.report) and return its files; a report that cannot
        be written is a warning, never a failed sweep."""
        from jsweep.eval.declaration import declarations
        from jsweep.tools.report import write_report

        after = {d.name for d in declarations() if d.judged or d.graded}  # scored after the sweep
        if any(c.spec.eval.keys() & after or c.spec.judge.pairwise for c in self.cells):
            from jsweep.tools.judge import after_sweep  # missing judgments, pairwise, grading sheet (issue 18)

            after_sweep(self.sweep_dir, self.cells, self.echo)
        try:
            out, _ = write_report(self.sweep_dir)
        except Exception as exc:  # the results are safe; only the report is missing
            self.echo(f"jsweep: warning: no report written ({type(exc).__name__}: {exc})")
            return []
        self.echo(f"jsweep: report (ranked cells, per-axis means, plots): {out / 'report.md'}")
        return sorted(p for p in out.iterdir() if p.is_file())

    def interrupt(self, signum: int = signal.SIGINT, grace: float = 30.0, reason: str = "") -> None:
        """Stop every running cell: SIGTERM to all at once (they record KILLED and exit), then SIGKILL
        what is left after ``grace`` seconds. Each is marked KILLED on its run."""
        name = reason or signal.Signals(signum).name
        running = [(idx, proc) for idx, proc in self.procs.items() if proc.poll() is None]
        for _, proc in running:  # first, before anything else can go wrong (a closed terminal)
            proc.stop(signal.SIGTERM)
        self.echo(
            f"jsweep: interrupted{'' if signum == signal.SIGINT and not reason else ' by ' + name}; stopping "
            f"{len(running)} running cell(s) (further Ctrl-C is ignored until they stop) ..."
        )
        deadline = time.monotonic() + grace
        for idx, proc in running:
            proc.wait_or_kill(deadline)
            cell = self.cells[idx]
            self.outcomes[idx] = CellOutcome(cell, "KILLED", 0.0, self.runs.get(idx), error=f"interrupted ({name})")
            self._tracked(
                Journal(cell.cell_dir / cellstate.JOURNAL),
                self.runs.get(idx, ""),
                fail_ops(
                    "KeyboardInterrupt"
                    if signum == signal.SIGINT and not reason
                    else ("LauncherError" if reason else name),
                    f"sweep interrupted ({name})",
                    cell.cell_dir / cellstate.LOG,
                    status="KILLED",
                ),
                journal_errors=not reason,
            )
            proc.poll()
            self.release(idx)


def _launcher_fault(n: int, cell_dir: Path) -> None:
    """Fault injection for tests: ``JSWEEP_LAUNCHER_FAULT=enospc@N`` makes the launcher find the disk
    full when it starts its N-th cell (as a write of that cell's state files would). Unset in normal use."""
    kind, _, at = os.environ.get("JSWEEP_LAUNCHER_FAULT", "").partition("@")
    if kind == "enospc" and n == int(at or 1):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(cell_dir / cellstate.CELL))


def run(
    cells: list[PlannedCell], sweep_dir: Path, *, grid: list[str] | None = None, echo: Callable[[str], None] = print
) -> SweepResult:
    """Run planned cells, one process each, and return the outcome of every cell."""
    return SweepRunner(cells, sweep_dir, grid, echo).run()


def format_plan(cells: list[PlannedCell]) -> str:
    lines = [
        f"jsweep: {len(cells)} cell(s) planned (dry run: nothing launched)",
        f"  {'#':>3}  {'cell id':12}  {'data':16}  cell",
    ]
    for c in cells:
        data = f"{c.data.get('n', '?')} ex {str(c.data.get('digest', ''))[:8]}" if c.data else "-"
        note = f"  [{c.data['capped']}]" if c.data.get("capped") else ""
        if c.data.get("dropped"):
            from jsweep.data.load import describe_drops

            note += (
                f"  [dropped {c.data['dropped']} {c.data.get('unit', 'records')}: "
                f"{describe_drops(c.data.get('dropped_by_reason') or {})}]"
            )
        lines.append(f"  {c.index:>3}  {c.cell_id:12}  {data:16}  {c.spec.label}{note}")
    return "\n".join(lines)


def write_summary(result: SweepResult) -> None:
    rows = [
        {
            "index": o.cell.index,
            "cell_id": o.cell.cell_id,
            "label": o.cell.spec.label,
            "overrides": list(o.cell.spec.overrides),
            "status": o.status,
            "seconds": round(o.seconds, 1),
            "run_id": o.run_id,
            "error": o.error,
            "log": str(o.cell.cell_dir / cellstate.LOG),
            "metrics": o.metrics,
        }
        for o in result.outcomes
    ]
    write_json(
        result.sweep_dir / "summary.json",
        {"sweep_id": result.sweep_id, "parent_run_id": result.parent_run_id, "cells": rows},
        ensure_ascii=False,
    )


def format_summary(result: SweepResult) -> str:
    from jsweep.eval.declaration import summary_metrics

    # the cells' own loss, then the headline scores each selected evaluator declares
    selected = [name for o in result.outcomes for name in o.cell.spec.eval]
    keys = ["eval/loss", *summary_metrics(selected, {k for o in result.outcomes for k in o.metrics})]
    skipped = sum(o.status == "SKIPPED" for o in result.outcomes)
    lines = [
        f"\njsweep: sweep {result.sweep_id} summary ({len(result.outcomes) - len(result.failed)}/"
        f"{len(result.outcomes)} finished{f', {skipped} skipped as already done' if skipped else ''}) -> "
        f"{result.sweep_dir / 'summary.json'}"
    ]
    header = f"  {'#':>3}  {'cell':8}  {'status':8}  {'time':>6}  " + "  ".join(f"{k:>15}" for k in keys) + "  cell"
    lines.append(header)
    for o in result.outcomes:
        vals = "  ".join(f"{o.metrics[k]:>15.4f}" if k in o.metrics else f"{'-':>15}" for k in keys)
        lines.append(
            f"  {o.cell.index:>3}  {o.cell.cell_id[:8]}  {o.status:8}  {o.seconds:>5.0f}s  {vals}  {o.cell.spec.label}"
        )
    pending = sum(len(Journal(o.cell.cell_dir / cellstate.JOURNAL)) for o in result.outcomes) + len(
        Journal(result.sweep_dir / cellstate.JOURNAL)
    )
    if pending:
        lines.append(
            f"  warning: {pending} tracking call(s) could not reach the tracking server; results are kept "
            f"in the cell directories. Run `jsweep sync {result.outcomes[0].cell.spec.output_root}` "
            f"once it is back."
        )
    for o in result.failed:
        lines.append(
            f"  {o.status} cell {o.cell.index} ({redact_text(o.cell.spec.label)}): {o.error}\n"
            f"         log: {o.cell.cell_dir / 'cell.log'}"
        )
    return "\n".join(lines)
