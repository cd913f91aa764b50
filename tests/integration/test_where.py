"""What runs where (issue 21): one real two-process DeepSpeed cell (gloo, CPU) in the default suite,
and the `gpu`-marked tests of what only a GPU shows (bf16, MFU and memory metrics, a GPU and a port
of its own for every cell, GPU discovery). `make test-gpu` runs the latter on a GPU machine; without
CUDA they skip."""

from __future__ import annotations

import json

import pytest

from tests.support.sweeps import run_jsweep


def _cell_runs(client):
    exp = client.get_experiment_by_name("jsweep")
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("jsweep.kind") == "cell"]


# --------------------------------------------------------------------------- default suite (CPU)


def test_two_rank_deepspeed_zero2_cell_on_cpu_with_gloo(tmp_path, mlflow_client_for, tiny_model_dir):
    """The smallest real DeepSpeed run: two processes, ZeRO-2, gloo, two steps, no evaluation."""
    proc = run_jsweep(
        [
            "distributed=zero2",
            "method=sft_full",
            "resources.gpus=2",
            "resources.cpu_processes=true",
            "train.max_steps=2",
            "train.micro_batch_size=2",
            "eval=[]",
            "train.save_model=false",
            "train.checkpoint_steps=-1",
        ],
        tmp_path,
        CUDA_VISIBLE_DEVICES="",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    (cell,) = [p for p in (tmp_path / "outputs" / "cells").iterdir() if p.is_dir()]
    ds = json.loads((cell / "deepspeed.json").read_text())
    assert ds["zero_optimization"]["stage"] == 2
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]) == (
        2,
        1,
        4,
    )
    assert (cell / "cell.log").read_text().count("x2 (zero2)") == 2  # both ranks trained
    client = mlflow_client_for(tmp_path)
    (run,) = _cell_runs(client)
    assert run.info.status == "FINISHED" and run.data.metrics["train/steps"] == 2
    assert [m.step for m in sorted(client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)] == [
        1,
        2,
    ]  # rank 0 alone logs, each step once
    history = [json.loads(line) for line in (cell / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if "train/loss" in r] == [1, 2]


def test_each_cell_gets_its_gpus_in_its_environment(monkeypatch):
    from jsweep.sweep import cell_env

    monkeypatch.delenv("MASTER_PORT", raising=False)

    env = cell_env([1, 3], "sqlite:///x.db", 4)
    assert (env["CUDA_VISIBLE_DEVICES"], env["MLFLOW_TRACKING_URI"]) == ("1,3", "sqlite:///x.db")
    # no rendezvous port of the launcher's choosing: torchrun --standalone binds one the OS picks
    assert "MASTER_PORT" not in env
    assert cell_env([], "u", 1)["CUDA_VISIBLE_DEVICES"] == ""  # a CPU cell sees no GPU


# --------------------------------------------------------------------------- GPU only (make test-gpu)


def _cuda() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


needs_gpu = pytest.mark.skipif(_cuda() < 1, reason="needs a CUDA GPU")
needs_two_gpus = pytest.mark.skipif(_cuda() < 2, reason="needs two CUDA GPUs")


@pytest.mark.gpu
@needs_gpu
def test_gpu_discovery_agrees_with_torch(monkeypatch):
    import torch

    from jsweep.distributed import gpu_facts
    from jsweep.scheduler import discover_gpus

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert discover_gpus("auto") == list(range(torch.cuda.device_count()))
    facts = gpu_facts()
    assert [f["index"] for f in facts] == list(range(torch.cuda.device_count()))
    assert [f["name"] for f in facts] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    assert [f["compute_cap"] for f in facts] == [
        float("{}.{}".format(*torch.cuda.get_device_capability(i))) for i in range(torch.cuda.device_count())
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert discover_gpus("auto") == [0]


@pytest.mark.gpu
@needs_gpu
def test_a_bf16_cell_on_a_gpu_logs_mfu_and_peak_memory(tmp_path, mlflow_client_for, tiny_model_dir):
    import torch

    from jsweep.distributed import peak_tflops
    from jsweep.job.sft import precision_flags

    assert precision_flags("auto", "cuda") == {"bf16": torch.cuda.is_bf16_supported(), "fp16": False}
    assert precision_flags("bf16", "cuda") == {"bf16": True, "fp16": False}
    proc = run_jsweep(["train.precision=bf16", "train.max_steps=3", "eval=[]"], tmp_path, CUDA_VISIBLE_DEVICES="0")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "on GPU 0" in proc.stdout
    (run,) = _cell_runs(mlflow_client_for(tmp_path))
    m = run.data.metrics
    assert (
        run.info.status == "FINISHED"
        and 0 < m["gpu/peak_memory_gb"] < torch.cuda.get_device_properties(0).total_memory / 2**30
    )
    name = torch.cuda.get_device_name(0)
    assert run.data.tags["jsweep.gpu"] == name
    if peak_tflops(name):
        assert 0 < m["train/mfu"] < 1
    assert m["train/tokens_per_second_per_gpu"] > 0


@pytest.mark.gpu
@needs_gpu
def test_packed_attention_on_fp32_inputs_under_autocast_and_without():
    """fp32 weights trained under bf16 autocast hand the varlen kernel fp32 q/k (RoPE's fp32 cos/sin promote
    them): it runs in bf16, as sdpa does under autocast; without autocast it attends example by example in fp32."""
    import torch

    from jsweep.job.attention import packed_attention
    from tests.support.attention import dense_reference

    g = torch.Generator().manual_seed(3)
    cu = [0, 5, 64, 65, 200]
    q, k, v = (torch.randn(200, 4, 64, generator=g) for _ in range(3))
    ref = dense_reference(q, k, v, cu, 0.125)
    qc, kc, vc = q.cuda(), k.cuda(), v.cuda()
    cu_t = torch.tensor(cu, dtype=torch.int32)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = packed_attention(qc, kc, vc, cu_t, 135, scaling=0.125)
    assert half.dtype == torch.bfloat16 and (half.double().cpu() - ref).norm() / ref.norm() < 1e-2
    full = packed_attention(qc, kc, vc, cu_t, 135, scaling=0.125)
    assert full.dtype == torch.float32 and (full.double().cpu() - ref).norm() / ref.norm() < 1e-5


@pytest.mark.gpu
@needs_two_gpus
def test_two_cells_on_two_gpus_each_get_a_gpu_and_a_port_of_their_own(tmp_path, tiny_model_dir):
    proc = run_jsweep(["-m", "lr=1e-5,1e-4", "train.max_steps=2", "eval=[]", "launcher.gpus=[0,1]"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    cells = [
        json.loads((p / "cell.json").read_text()) for p in (tmp_path / "outputs" / "cells").iterdir() if p.is_dir()
    ]
    assert sorted(tuple(c["gpus"]) for c in cells) == [(0,), (1,)]
    assert "on GPU 0" in proc.stdout and "on GPU 1" in proc.stdout


def test_gpu_discovery_reads_cuda_visible_devices_then_nvidia_smi(tmp_path, monkeypatch):
    """Without GPUs here, a scripted `nvidia-smi` on PATH answers the query the real one answers."""
    import os

    from jsweep.scheduler import Scheduler, discover_gpus

    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\n[ "$1 $2" = "--query-gpu=index --format=csv,noheader" ] && printf "0\\n1\\n3\\n" '
        '|| echo "unexpected: $*" >&2\n'
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert discover_gpus() == discover_gpus("auto") == discover_gpus(None) == [0, 1, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert discover_gpus() == [2, 5]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert discover_gpus() == []  # hidden on purpose: no GPU
    assert discover_gpus([1, 2]) == [1, 2] and discover_gpus("0,2") == [0, 2] and discover_gpus(3) == [3]
    sched = Scheduler([])
    assert (sched.cpu_slots, sched.cpu_free, sched.stop_launching, sched.check) == (1, 1, False, None)
    assert Scheduler([], cpu_slots=0).cpu_slots == 1 and Scheduler([0, 1], cpu_slots=3).free == [0, 1]
