"""The Hydra application. Multirun (-m) goes through jsweep's own launcher
(hydra_plugins/jsweep_launcher); a single run is a sweep of one cell, run the same way."""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from jsweep.compose import CONF_DIR, to_spec
from jsweep.errors import JsweepError, LauncherError, TrackingUnreachable

_exit_code = 0


def execute(specs: list, sweep_dir: Path, grid: list[str]) -> int:
    """Plan (pre-flight) and run cells; the exit code is 0 only when every cell finished. What it
    prints (MLflow's own lines included) has the grid's secrets masked."""
    from jsweep.redaction import RedactingStream, remember, secret_values

    for spec in specs:
        remember(secret_values(spec.to_dict()))
    remember(secret_values({"grid": list(grid)}))
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    try:
        return _execute(specs, sweep_dir, grid)
    finally:
        sys.stdout, sys.stderr = saved


def _execute(specs: list, sweep_dir: Path, grid: list[str]) -> int:
    from jsweep import sweep

    try:
        planned = sweep.plan(specs)
    except JsweepError as exc:
        print(f"jsweep: error: {exc}", file=sys.stderr)
        return 2
    if specs and specs[0].launcher.dry_run:
        print(sweep.format_plan(planned))
        return 0
    try:
        result = sweep.run(planned, sweep_dir, grid=grid)
    except KeyboardInterrupt as exc:  # Ctrl-C 130, SIGTERM 143, SIGHUP 129, after the cells were stopped
        return 128 + int(getattr(exc, "signum", 2))
    except TrackingUnreachable as exc:
        print(f"jsweep: error: {exc}", file=sys.stderr)
        return 2
    except LauncherError as exc:
        print(f"jsweep: error: {exc}", file=sys.stderr)
        return 1
    return 1 if result.failed else 0


def remove_unused(sweep_dir: Path, keep_if_more_than: Collection[str] = ()) -> None:
    """Remove a sweep directory Hydra created for a sweep that was refused before anything ran (holding
    nothing, or only ``keep_if_more_than`` files such as Hydra's multirun.yaml), and the ``sweeps`` and
    output directories above it if that leaves them empty."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir() or any(p.name not in keep_if_more_than or p.is_dir() for p in sweep_dir.iterdir()):
        return
    for p in sweep_dir.iterdir():
        p.unlink()
    dirs = [sweep_dir]
    if sweep_dir.parent.name == "sweeps":
        dirs.append(sweep_dir.parent)
        if sweep_dir.parent.parent.resolve() != Path.cwd().resolve():
            dirs.append(sweep_dir.parent.parent)
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _task(cfg: DictConfig) -> None:
    global _exit_code
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    try:
        spec = to_spec(cfg, [])
    except JsweepError as exc:
        print(f"jsweep: error: {exc}", file=sys.stderr)
        _exit_code = 2
        remove_unused(Path(hc.run.dir))
        return
    _exit_code = execute([spec], Path(hc.run.dir), overrides)
    if _exit_code == 2:  # refused before anything ran: leave nothing behind
        remove_unused(Path(hc.run.dir))


def run_hydra(argv: Sequence[str]) -> int:
    global _exit_code
    _exit_code = 0
    saved = sys.argv
    sys.argv = [saved[0] if saved else "jsweep", *argv]
    try:
        _task()
    except SystemExit as exc:  # Hydra exits on its own errors; our launcher exits with the sweep's code
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code
    finally:
        sys.argv = saved
    return _exit_code
