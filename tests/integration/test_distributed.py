"""Multi-GPU cells: generated DeepSpeed configs, pre-flight checks, and real multi-process runs on CPU."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

from jsweep.compose import compose_spec
from jsweep.distributed import (
    check_offload_memory,
    check_resources,
    deepspeed_config,
    host_memory_bytes,
    offload_state_bytes,
    peak_tflops,
    processes,
    train_command,
)
from jsweep.sweep import cell_env
from jsweep.validate import validate_cell
from tests.support.store import seed_store
from tests.support.sweeps import finish, run_jsweep, start_jsweep

H100 = [{"index": i, "name": "NVIDIA H100 80GB HBM3", "compute_cap": 9.0, "memory": "81559 MiB"} for i in range(2)]
V100 = [{"index": 0, "name": "Tesla V100-SXM2-32GB", "compute_cap": 7.0, "memory": "32768 MiB"}]


def test_deepspeed_configs_per_stage():
    z3 = deepspeed_config(
        compose_spec(["distributed=zero3", "resources.gpus=2", "train.micro_batch_size=2", "train.grad_accum=4"]),
        bf16=True,
    )
    assert z3["zero_optimization"]["stage"] == 3
    assert z3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True  # evaluation can load it
    assert (z3["train_micro_batch_size_per_gpu"], z3["gradient_accumulation_steps"], z3["train_batch_size"]) == (
        2,
        4,
        16,
    )
    assert z3["bf16"]["enabled"] is True and "optimizer" not in z3
    z2 = deepspeed_config(compose_spec(["distributed=zero2", "resources.gpus=2"]), bf16=False)
    assert z2["zero_optimization"]["stage"] == 2 and "offload_optimizer" not in z2["zero_optimization"]
    off = deepspeed_config(compose_spec(["distributed=zero3_offload", "resources.gpus=1"]), bf16=True)
    assert off["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert off["zero_optimization"]["offload_param"]["device"] == "cpu"
    # offloaded states are updated in place by DeepSpeed's CPU Adam (torch's AdamW would need temporaries
    # as large as the states: a 13B cell was killed for host memory); its settings come from train.*
    assert off["optimizer"] == {
        "type": "AdamW",
        "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
    }


def test_offload_needs_a_compiler_and_ninja_before_launch(tmp_path, monkeypatch):
    spec = compose_spec(["distributed=zero3_offload", "resources.gpus=1", "resources.cpu_processes=true"])
    gpus = [{"index": 0, "name": "NVIDIA H200", "compute_cap": 9.0, "memory": "143771 MiB"}]
    monkeypatch.setenv("PATH", str(tmp_path))  # neither tool anywhere but, maybe, beside the interpreter
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    problems = check_resources(spec, gpus)
    assert len(problems) == 1, problems
    assert "distributed=zero3_offload" in problems[0] and "no-such-compiler-xyz" in problems[0]
    monkeypatch.delenv("CXX")
    (tmp_path / "c++").write_text("#!/bin/sh\n")
    (tmp_path / "ninja").write_text("#!/bin/sh\n")
    for tool in ("c++", "ninja"):
        (tmp_path / tool).chmod(0o755)
    assert check_resources(spec, gpus) == []
    assert check_resources(compose_spec(["distributed=zero3", "resources.gpus=1"]), gpus) == []


def test_cells_find_the_environments_own_tools_first(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = cell_env([0], "sqlite:///x.db", 2)
    assert env["PATH"].split(os.pathsep) == [os.path.dirname(sys.executable), "/usr/bin", "/bin"]


def test_processes_and_launch_command():
    assert processes(compose_spec([])) == 1
    assert processes(compose_spec(["distributed=ddp", "resources.gpus=2"])) == 2
    cmd = train_command("/c", 2)
    assert cmd[3:5] == ["--standalone", "--nproc_per_node=2"] and cmd[-2:] == ["--stage", "train"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["distributed=zero3", "resources.gpus=1"], "distributed=zero3 needs at least 2 GPUs per cell"),
        (["distributed=ddp", "resources.gpus=1"], "distributed=ddp needs at least 2 GPUs"),
        (["resources.gpus=2"], "resources.gpus=2 needs a multi-GPU method"),
        (["distributed=zero3", "resources.gpus=2", "train.save_model=false"], "evaluated from the saved model"),
    ],
)
def test_impossible_combinations_are_refused(overrides, message):
    assert any(message in p for p in validate_cell(compose_spec(overrides)))


def test_gpu_checks_against_an_inventory():
    spec = compose_spec(["distributed=zero3", "resources.gpus=4"])
    assert "resources.gpus=4 but only 2 GPU(s) are visible" in check_resources(spec, H100)[0]
    assert check_resources(compose_spec(["distributed=zero3", "resources.gpus=2"]), H100) == []
    bf16 = compose_spec(["train.precision=bf16"])
    assert "has no bf16" in check_resources(bf16, V100)[0]
    assert (
        "needs GPUs and none are visible"
        in check_resources(compose_spec(["distributed=zero2", "resources.gpus=2"]), [])[0]
    )


def test_peak_table():
    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("Some Unknown GPU") is None


def test_preflight_refuses_gpu_requests_on_a_cpu_machine(tmp_path):
    proc = run_jsweep(["distributed=zero2", "resources.gpus=2"], tmp_path, CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 2 and "needs GPUs and none are visible" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("dist", ["zero2", "zero3"])
@pytest.mark.parametrize("method", ["sft_full", "sft_lora", "dpo", "dpo_lora"])
def test_two_process_deepspeed_on_cpu_with_gloo(tmp_path, mlflow_client_for, tiny_model_dir, dist, method):
    micro = 2 if method.startswith("dpo") else 4
    data = ["dataset=hh_rlhf_ja", "train.logging_steps=1"] if method.startswith("dpo") else []
    proc = run_jsweep(
        [
            f"distributed={dist}",
            f"method={method}",
            *data,
            "resources.gpus=2",
            "resources.cpu_processes=true",
            "train.max_steps=3",
            f"train.micro_batch_size={micro}",
            "eval=[llm_jp_eval]",
            "eval.llm_jp_eval.tasks=[jnli]",
        ],
        tmp_path,
        CUDA_VISIBLE_DEVICES="",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    cell = next((tmp_path / "outputs" / "cells").iterdir())
    ds = json.loads((cell / "deepspeed.json").read_text())
    assert ds["zero_optimization"]["stage"] == int(dist[-1]) and ds["train_batch_size"] == micro * 2  # x 1 x 2 ranks
    log = (cell / "cell.log").read_text()
    assert log.count(f"x2 ({dist})") == 2  # both ranks trained
    exp = mlflow_client_for(tmp_path).get_experiment_by_name("jsweep")
    (run,) = [
        r
        for r in mlflow_client_for(tmp_path).search_runs([exp.experiment_id])
        if r.data.tags.get("jsweep.kind") == "cell"
    ]
    assert run.info.status == "FINISHED"
    assert "llm_jp_eval/AVG_partial" in run.data.metrics and "eval/loss" in run.data.metrics  # evaluated from the save
    assert run.data.metrics["train/tokens_per_second_per_gpu"] > 0
    if method.startswith("dpo"):  # the reference is the starting policy: no reward before the first update
        first = mlflow_client_for(tmp_path).get_metric_history(run.info.run_id, "train/rewards_chosen")[0]
        assert first.step == 1 and first.value == 0.0


# llm-jp-13b-v1.0's architecture as the 2x H200 runs of issue 20 logged it: "12855.59M parameters"
GB = 10**9
NODE_X2 = 251 * 2**30  # MemTotal of the 2x H200 node ("Mem: 251" in GiB), where the runs below were made


def test_offload_host_memory_is_deepspeeds_estimate_of_the_model_states():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    for params in (12_855_590_400, 1_000_003):
        for gpus in (1, 2, 4, 8):
            for offload_param in (True, False):
                cpu, _, _ = estimate_zero3_model_states_mem_needs(
                    params, 1, gpus, 1, True, offload_param, True, additional_buffer_factor=1.0
                )
                assert offload_state_bytes(params, 3, offload_param, gpus) == cpu, (params, gpus, offload_param)
            cpu, _ = estimate_zero2_model_states_mem_needs(params, gpus, 1, True, additional_buffer_factor=1.0)
            assert offload_state_bytes(params, 2, False, gpus) == cpu, (params, gpus)


def test_a_cell_that_offloads_more_than_its_node_holds_is_refused_with_what_to_change():
    """The two offload runs of a 13B cell on 2x H200 (benchmarks/README.md): parameters and optimizer
    states offloaded were killed for memory at 266 GB; optimizer states alone trained, peaking at 254 GB."""
    from jsweep.models.load import count_parameters

    both = compose_spec(["model=llm-jp-13b-v1.0", "model.init=random", "distributed=zero3_offload", "resources.gpus=2"])
    params = count_parameters(both.model)
    assert round(params / 1e6, 2) == 12855.59  # as the cell logged it, built on the meta device
    problem = check_offload_memory(both, params, 2, NODE_X2)
    assert problem == (
        "distributed=zero3_offload offloads the optimizer states and parameters of 12.86B parameters to host "
        "memory: about 278 GB on this node (18 bytes a parameter, DeepSpeed's estimate of the model states, "
        "and 20% for buffers), but it has 270 GB; use more GPUs without offload (distributed=zero3), or the "
        "parameters kept on the GPUs (distributed.offload_param=false), or a node with more memory"
    )
    states_only = compose_spec(
        ["model=llm-jp-13b-v1.0", "distributed=zero3_offload", "distributed.offload_param=false", "resources.gpus=2"]
    )
    assert check_offload_memory(states_only, params, 2, NODE_X2) is None  # 247 GB: it trained
    assert check_offload_memory(both, params, 4, 503 * 2**30) is None  # the 4x H200 node
    assert check_offload_memory(both, params, 2, None) is None  # memory unknown: not refused
    no_offload = compose_spec(["model=llm-jp-13b-v1.0", "distributed=zero3", "resources.gpus=2"])
    assert check_offload_memory(no_offload, params, 2, 1 * GB) is None  # states on the GPUs: no host check
    zero2 = compose_spec(["distributed=zero2", "distributed.offload_optimizer=true", "resources.gpus=8"])
    # ZeRO-2 without zero.Init: every rank holds the whole model while it loads, 4 bytes a parameter each
    assert "32 bytes a parameter" in check_offload_memory(zero2, 10 * GB, 8, 300 * GB)


def test_host_memory_is_the_cgroups_limit_where_one_is_set_else_memtotal(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       263082960 kB\nMemFree:        262000000 kB\n")
    cgroup = tmp_path / "memory.max"
    cgroup.write_text("max\n")  # no limit
    assert host_memory_bytes(str(meminfo), str(cgroup)) == 263082960 * 1024
    cgroup.write_text("68719476736\n")  # a Slurm job's --mem=64G
    assert host_memory_bytes(str(meminfo), str(cgroup)) == 64 * 2**30
    assert host_memory_bytes(str(meminfo), str(tmp_path / "none")) == 263082960 * 1024
    assert host_memory_bytes(str(tmp_path / "none"), str(tmp_path / "none")) is None


def test_an_offload_cell_too_big_for_its_node_stops_in_seconds_with_one_line(tmp_path):
    """The cell counts the model's parameters on the meta device and stops before it builds them:
    llm-jp-13b-v1.0's architecture at 400 layers, 126B parameters, about 2.7 TB of host memory offloaded,
    more than any machine this suite runs on. Stand-in compiler and ninja: the CPU Adam op they would
    build is never reached."""
    for tool in ("c++", "ninja"):
        (tmp_path / tool).write_text("#!/bin/sh\nexit 1\n")
        (tmp_path / tool).chmod(0o755)
    proc = run_jsweep(
        [
            "model=llm-jp-13b-v1.0",
            "model.init=random",
            "model.arch.num_hidden_layers=400",
            "distributed=zero3_offload",
            "method=sft_full",
            "resources.gpus=1",
            "resources.cpu_processes=true",
            "data_source=fixture",
            "eval=[]",
        ],
        tmp_path,
        timeout=300,
        CUDA_VISIBLE_DEVICES="",
        PATH=f"{tmp_path}:{os.environ['PATH']}",
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    cell = next((tmp_path / "outputs" / "cells").iterdir())
    status = json.loads((cell / "status.json").read_text())
    assert status["status"] == "FAILED" and status["error_class"] == "ConfigError"
    assert re.fullmatch(
        r"distributed=zero3_offload offloads the optimizer states and parameters of 126\.13B parameters to host "
        r"memory: about 2724 GB on this node \(18 bytes a parameter, DeepSpeed's estimate of the model states, "
        r"and 20% for buffers\), but it has \d+ GB; use more GPUs without offload \(distributed=zero3\), or the "
        r"parameters kept on the GPUs \(distributed.offload_param=false\), or a node with more memory",
        status["error"],
    ), status["error"]
    assert status["error"] in proc.stdout  # the launcher prints it with the failed cell
    assert "model/parameters" not in json.loads(
        (cell / "metrics.json").read_text() if (cell / "metrics.json").exists() else "{}"
    )


@pytest.mark.slow
def test_zero3_offload_on_one_process_runs_under_deepspeed(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = run_jsweep(
        [
            "distributed=zero3_offload",
            "method=sft_full",
            "resources.gpus=1",
            "resources.cpu_processes=true",
            "train.max_steps=2",
            "eval=[llm_jp_eval]",
            "eval.llm_jp_eval.tasks=[jnli]",
        ],
        tmp_path,
        CUDA_VISIBLE_DEVICES="",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    cell = next((tmp_path / "outputs" / "cells").iterdir())
    ds = json.loads((cell / "deepspeed.json").read_text())
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert (cell / "model" / "model.safetensors").exists()
    exp = mlflow_client_for(tmp_path).get_experiment_by_name("jsweep")
    (run,) = [
        r
        for r in mlflow_client_for(tmp_path).search_runs([exp.experiment_id])
        if r.data.tags.get("jsweep.kind") == "cell"
    ]
    assert run.info.status == "FINISHED" and "deepspeed.json" in {
        a.path for a in mlflow_client_for(tmp_path).list_artifacts(run.info.run_id)
    }


# A hub preset cut down to a few thousand weights, built with random weights (no download): the
# shape of a GPU throughput run, where a LoRA adapter is meaningless without its random base.
SMALL_RANDOM = [
    "model=llm-jp-3-980m",
    "model.init=random",
    "model.arch.hidden_size=32",
    "model.arch.intermediate_size=64",
    "model.arch.num_hidden_layers=1",
    "model.arch.num_attention_heads=2",
    "model.arch.num_key_value_heads=2",
    "model.arch.vocab_size=2048",
    "data_source=fixture",
    "train.max_length=128",
]


def test_lora_over_random_weights_saves_its_base_and_evaluates_from_it(tmp_path, tiny_model_dir):
    proc = run_jsweep([*SMALL_RANDOM, "method=sft_lora", "train.max_steps=2", "eval=[]"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model_dir = next((tmp_path / "outputs" / "cells").iterdir()) / "model"
    assert (model_dir / "adapter_config.json").exists() and (model_dir / "base" / "config.json").exists()
    # The eval tool loads the adapter over the saved base, offline (the hub id would need the network).
    # It only reads the saved model, as the DPO cell below does: the two run at the same time (the
    # evaluation's run in a store of its own, so that two processes never write one SQLite file).
    evaluation = start_jsweep(
        [
            "eval",
            str(model_dir),
            *SMALL_RANDOM[:-1],
            "eval=[llm_jp_eval]",
            "eval.llm_jp_eval.tasks=[jnli]",
            "eval.llm_jp_eval.max_num_samples=2",
        ],
        tmp_path,
        MLFLOW_TRACKING_URI=f"sqlite:///{seed_store(tmp_path / 'eval.db')}",
    )
    # DPO starting from the adapter merges it into the saved base, not into fresh random weights.
    proc = run_jsweep(
        [
            *SMALL_RANDOM,
            "method=dpo",
            "dataset=hh_rlhf_ja",
            f"method.init_from={model_dir}",
            "train.max_steps=1",
            "train.micro_batch_size=2",
            "eval=[]",
            "output_root=dpo",
        ],
        tmp_path,
    )
    evaluated = finish(evaluation)
    assert evaluated.returncode == 0, evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    assert "llm_jp_eval/AVG" in evaluated.stdout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    dpo_cell = next((tmp_path / "dpo" / "cells").iterdir())
    assert json.loads((dpo_cell / "status.json").read_text())["status"] == "FINISHED"
    assert "merging into" not in (dpo_cell / "cell.log").read_text()  # no base-mismatch warning


@pytest.mark.slow
def test_lora_over_random_weights_under_zero3_evaluates_its_saved_adapter(tmp_path, mlflow_client_for, tiny_model_dir):
    proc = run_jsweep(
        [
            *SMALL_RANDOM,
            "method=dpo_lora",
            "dataset=hh_rlhf_ja",
            "distributed=zero3",
            "resources.gpus=2",
            "resources.cpu_processes=true",
            "train.max_steps=2",
            "train.micro_batch_size=2",
            "eval=[llm_jp_eval]",
            "eval.llm_jp_eval.tasks=[jnli]",
            "eval.llm_jp_eval.max_num_samples=2",
        ],
        tmp_path,
        CUDA_VISIBLE_DEVICES="",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    model_dir = next((tmp_path / "outputs" / "cells").iterdir()) / "model"
    assert (model_dir / "base" / "model.safetensors").stat().st_size > 0  # gathered from both ranks' shards
    exp = mlflow_client_for(tmp_path).get_experiment_by_name("jsweep")
    (run,) = [
        r
        for r in mlflow_client_for(tmp_path).search_runs([exp.experiment_id])
        if r.data.tags.get("jsweep.kind") == "cell"
    ]
    assert run.info.status == "FINISHED" and "llm_jp_eval/AVG_partial" in run.data.metrics


def test_a_multi_gpu_cell_frees_its_other_gpus_while_it_evaluates(tmp_path, tiny_model_dir):
    """Three (fake) GPUs, two 2-GPU DDP cells run as gloo processes on CPU. The second cell does not
    fit beside the first until the first moves to evaluation on its first GPU, which frees GPU 1.
    Meanwhile another program holds ports 29500 and 29501, as another sweep's cells on the same machine
    would: the launcher once gave its cells 29500 + their index, and the first cell failed (EADDRINUSE)."""
    import socket

    holders = []
    for port in (29500, 29501):
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("", port))
            holder.listen()
        except OSError:  # held already, by another program
            holder.close()
            continue
        holders.append(holder)
    try:
        proc = run_jsweep(
            [
                "-m",
                "lr=1e-5,1e-4",
                "distributed=ddp",
                "resources.gpus=2",
                "resources.cpu_processes=true",
                "launcher.gpus=0,1,2",
                "train.max_steps=2",
                "eval=[llm_jp_eval]",
                "eval.llm_jp_eval.max_num_samples=10",
            ],
            tmp_path,
            timeout=600,
        )
    finally:
        for holder in holders:
            holder.close()
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    first, second = sorted(
        (json.loads((d / "cell.json").read_text()) for d in (tmp_path / "outputs" / "cells").iterdir() if d.is_dir()),
        key=lambda m: m["gpus"],
    )
    assert first["gpus"] == [0, 1] and second["gpus"] == [1, 2]
    lines = out.splitlines()
    freed = next(i for i, l in enumerate(lines) if "trained; evaluating on GPU 0, GPU 1 free for the next cell" in l)
    started = next(i for i, l in enumerate(lines) if " on GPU 1,2" in l)
    ended = next(i for i, l in enumerate(lines) if l.startswith("[1/2") and "FINISHED" in l)
    assert freed < started < ended, out[-3000:]  # the second cell started while the first evaluated
    assert out.count("training: 2 steps") == 2  # once per cell on the console, not once per rank
    log = next(p for p in (tmp_path / "outputs" / "cells").glob("*/cell.log"))
    assert "[rank 1] training: 2 steps" in log.read_text()


def test_gpu_hours_count_one_gpu_for_the_eval_stage_of_a_multi_gpu_cell():
    from jsweep.job.cell import cell_time

    assert cell_time(1, 360.0, {}) == (360.0, 0.1)  # one process, one GPU
    prior = {"time/setup_seconds": 60.0, "time/train_seconds": 300.0, "train/loss": 1.0}
    total, hours = cell_time(2, 180.0, prior)  # trained on 2, evaluated on 1
    assert total == 540.0 and hours == pytest.approx((2 * 360 + 180) / 3600)
    assert cell_time(0, 180.0, prior) == (540.0, 0.0)  # CPU processes: no GPU time
