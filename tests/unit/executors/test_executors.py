"""The executor seam: launcher keys typed per executor, cell state names in one module, GRES parsing.
(The executors themselves run in test_sweep/test_resilience (local) and test_slurm (a real Slurm).)"""

from __future__ import annotations

import pytest

from jsweep import cellstate
from jsweep.errors import ConfigError
from jsweep.executors import EXECUTORS, executor_class, options_class
from jsweep.executors.slurm import Options, gres_gpus
from jsweep.schema import LauncherSpec, from_dict
from tests.support.sweeps import run_jsweep


def cell_from_dict(data):
    return from_dict(LauncherSpec, data["launcher"], "launcher")


def test_every_executor_has_a_config_file_and_loads(tmp_path):
    from jsweep.paths import CONF_DIR

    for name in EXECUTORS:
        assert (CONF_DIR / "launcher" / f"{name}.yaml").exists()
        assert executor_class(name).name == name
    assert options_class("local") is None and options_class("slurm") is Options
    with pytest.raises(ConfigError, match="no such launcher"):
        executor_class("kubernetes")


def test_executor_keys_are_typed_and_survive_cell_json():
    spec = cell_from_dict(
        {
            "launcher": {
                "name": "slurm",
                "partition": "gpu",
                "time_limit": "01:00:00",
                "extra_sbatch": ["--exclusive"],
                "env": {"HF_HUB_OFFLINE": "1"},
            }
        }
    )
    assert spec.options.partition == "gpu" and spec.options.extra_sbatch == ["--exclusive"]
    import dataclasses

    again = cell_from_dict({"launcher": dataclasses.asdict(spec)})  # as cell.json holds it
    assert again == spec
    with pytest.raises(ConfigError, match="unknown key 'launcher.partition'"):
        cell_from_dict({"launcher": {"name": "local", "partition": "gpu"}})
    with pytest.raises(ConfigError, match="unknown key 'launcher.bogus'"):
        cell_from_dict({"launcher": {"name": "slurm", "bogus": 1}})


def test_a_slurm_key_on_the_local_launcher_is_refused_before_anything_runs(tmp_path):
    proc = run_jsweep(["launcher.partition=gpu"], tmp_path)
    assert proc.returncode == 2 and "launcher.partition" in proc.stderr
    assert not (tmp_path / "outputs" / "cells").exists()


@pytest.mark.parametrize(
    "gres, name, n",
    [
        ("gpu:4", "gpu", 4),
        ("gpu:a100:8(S:0-1)", "gpu", 8),
        ("(null)", "gpu", 0),
        ("gpu:h100:4,shard:16", "gpu", 4),
        ("gpu:h100:4", "gpu:a100", 0),
        ("gpu:a100:2", "gpu:a100", 2),
    ],
)
def test_gpus_per_node_from_sinfo(gres, name, n):
    assert gres_gpus(gres, name) == n


def test_a_cell_that_left_no_record_counts_as_killed_hard(tmp_path):
    import signal

    assert cellstate.returncode(tmp_path) == -signal.SIGKILL
    (tmp_path / cellstate.STATUS).write_text('{"status": "KILLED"}')
    assert cellstate.returncode(tmp_path) == -signal.SIGTERM
    (tmp_path / cellstate.STATUS).write_text('{"status": "FINISHED"}')
    assert cellstate.returncode(tmp_path) == 0
