"""jsweep's Hydra launcher: pre-flight every cell of the grid, then run each in its own process.

Registered as ``hydra/launcher=jsweep`` and selected by default in conf/config.yaml. It composes
each job's config, converts it to a typed CellSpec, and hands the whole grid to
:mod:`jsweep.sweep` (plain Python), which validates all cells before launching any.
"""

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf


@dataclass
class JsweepLauncherConf:
    _target_: str = "hydra_plugins.jsweep_launcher.jsweep_launcher.JsweepLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="jsweep", node=JsweepLauncherConf, provider="jsweep")


@dataclass
class JsweepSweeperConf:
    _target_: str = "hydra_plugins.jsweep_launcher.jsweep_launcher.JsweepSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="jsweep", node=JsweepSweeperConf, provider="jsweep")


class JsweepSweeper(BasicSweeper):
    """Hydra's basic sweeper (the same grid expansion), minus its own check that every job composes: that
    check composes each cell in full once more (about 0.3 s a cell, 5 minutes for 1,000 cells), and the
    launcher's pre-flight composes and validates every cell anyway, naming each problem, before any runs."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        return None


class JsweepLauncher(Launcher):
    def __init__(self, **_: Any) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from jsweep.app import execute
        from jsweep.compose import GridComposer, varying_overrides
        from jsweep.errors import JsweepError

        assert self.config is not None
        setup_globals()
        HydraConfig.instance().set_config(self.config)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        labels = varying_overrides(job_overrides)
        specs, problems = [], []
        loader = self.hydra_context.config_loader
        # Hydra's full composition costs ~0.3 s a cell (minutes for a 1,000-cell grid); the group choices
        # are composed once per distinct set and each cell's other overrides applied to that (GridComposer).
        composer = GridComposer(
            lambda groups: loader.load_sweep_config(self.config, groups),
            is_group=lambda key: loader.repository.group_exists(key),
        )
        for idx, overrides in enumerate(job_overrides):
            try:
                specs.append(composer.spec(list(overrides), labels[idx]))
            except JsweepError as exc:
                problems.append(f"cell {idx} ({' '.join(overrides)}): {exc}")
            except Exception as exc:  # composition errors become one line each
                problems.append(f"cell {idx} ({' '.join(overrides)}): {str(exc).splitlines()[0]}")
        if problems:
            print(f"jsweep: error: {len(problems)} problem(s) found before launching; nothing ran:", file=sys.stderr)
            from jsweep.redaction import redact_text

            for p in problems:
                print(f"  - {redact_text(p)}", file=sys.stderr)
            _remove_unused(sweep_dir)
            sys.exit(2)
        grid = [o for o in sys.argv[1:] if "=" in o and not o.startswith("-")]
        _redact_saved_config(sweep_dir / "multirun.yaml", grid)
        code = execute(specs, sweep_dir, grid)
        if code == 2:  # refused before anything ran: leave nothing behind
            _remove_unused(sweep_dir)
        if code != 0:
            sys.exit(code)
        rets = []
        for overrides in job_overrides:
            ret = JobReturn(
                overrides=list(overrides),
                cfg=OmegaConf.create({}),
                hydra_cfg=None,
                working_dir=str(sweep_dir),
                task_name="jsweep",
                status=JobStatus.COMPLETED,
            )
            ret._return_value = None
            rets.append(ret)
        return rets


def _redact_saved_config(path: Path, grid: list) -> None:
    """Hydra's sweeper saved the whole config with the raw overrides as multirun.yaml: mask its secrets
    (credential keys, URI user information, the grid's secret values) before anything runs."""
    import yaml

    from jsweep.redaction import redact, remember, secret_values

    if not path.is_file():
        return
    remember(secret_values({"grid": list(grid)}))
    text = path.read_text(encoding="utf-8")
    try:
        clean = yaml.safe_dump(redact(yaml.safe_load(text)), allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        from jsweep.redaction import redact_text

        clean = redact_text(text)
    if clean != text:
        path.write_text(clean, encoding="utf-8")


def _remove_unused(sweep_dir: Path) -> None:
    from jsweep.app import remove_unused

    remove_unused(sweep_dir, keep_if_more_than={"multirun.yaml"})
