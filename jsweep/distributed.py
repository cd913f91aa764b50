"""Multi-GPU cells: the DeepSpeed config jsweep generates, the launch command, and GPU facts.

Pure Python (no torch): the planner uses it for pre-flight checks, the launcher for commands.
A multi-GPU cell trains under ``torchrun`` (one process per GPU; the HF Trainer picks up the
generated DeepSpeed config), then is evaluated by a single process on its first GPU from the
saved model (see jsweep.job.multi).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

# Dense bf16 peak TFLOP/s of known GPUs (tensor cores, no sparsity), for the MFU estimate.
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "A800": 312.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "RTX 6000 Ada": 364.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
    "A6000": 155.0,
}


def peak_tflops(gpu_name: str) -> float | None:
    """bf16 peak of a GPU by (the longest matching part of) its name; None when unknown."""
    name = gpu_name.replace("NVIDIA ", "")
    matches = [k for k in PEAK_BF16_TFLOPS if k in name]
    return PEAK_BF16_TFLOPS[max(matches, key=len)] if matches else None


def gpu_facts() -> list[dict[str, Any]]:
    """Name and compute capability of each visible GPU (nvidia-smi); [] without GPUs."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,compute_cap,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    facts = []
    for line in out.strip().splitlines():
        idx, name, cap, mem = [x.strip() for x in line.split(",")]
        facts.append({"index": int(idx), "name": name, "compute_cap": float(cap), "memory": mem})
    return facts


def deepspeed_config(spec: Any, bf16: bool) -> dict[str, Any]:
    """The DeepSpeed config of a cell, with batch sizes and precision written out from train.*
    (the HF Trainer checks they agree with its arguments), so ZeRO-3 can partition the model
    while it is built, before the Trainer exists.

    Without optimizer offload there is no optimizer section: the Trainer's torch AdamW is used, so no
    DeepSpeed op is compiled. With it (``zero3_offload``), DeepSpeed's own AdamW is named, which ZeRO
    runs as DeepSpeedCPUAdam: it updates the offloaded fp32 states in place. torch's AdamW on those
    states needs temporaries as large as the states themselves: a 13B cell on 4 GPUs was killed for
    host memory (benchmarks/README.md). Its C++ op is compiled on first use (``check_resources``
    asks for a compiler and ninja before launch); lr, betas, eps and weight decay come from train.*.
    """
    t = spec.train
    world = processes(spec)
    d = spec.distributed
    zero: dict[str, Any] = {
        "stage": d.zero_stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if d.zero_stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    if d.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if d.offload_param and d.zero_stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    optimizer: dict[str, Any] = {}
    if d.offload_optimizer:
        optimizer["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
        }
    return {
        **optimizer,
        "train_micro_batch_size_per_gpu": t.micro_batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "train_batch_size": t.micro_batch_size * t.grad_accum * world,
        "gradient_clipping": t.max_grad_norm,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": t.precision == "fp16" and not bf16},
        "zero_optimization": zero,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def tool_path() -> str:
    """PATH as cells see it: the interpreter's own bin directory first (a virtual environment's ninja,
    which torch's extension builder finds only on PATH), then the caller's PATH."""
    here = os.path.dirname(sys.executable)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join([here, *[p for p in parts if p and p != here]])


def processes(spec: Any) -> int:
    """Training processes of a cell: its GPUs for ddp/deepspeed, else 1."""
    return max(1, spec.resources.gpus) if spec.distributed.backend != "none" else 1


def train_command(cell_dir: str, nproc: int, port: int) -> list[str]:
    """torchrun for the training stage of a multi-process cell."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone" if port <= 0 else f"--master_port={port}",
        f"--nproc_per_node={nproc}",
        "-m",
        "jsweep.job.cell",
        cell_dir,
        "--stage",
        "train",
    ]


def uses_bf16(spec: Any, gpus: list[dict[str, Any]]) -> bool:
    """Whether a cell trains in bf16: precision bf16, or auto on GPUs that have it (compute capability 8+)."""
    if spec.train.precision == "bf16":
        return True
    return spec.train.precision == "auto" and bool(gpus) and all((g["compute_cap"] or 0) >= 8.0 for g in gpus)


def check_resources(spec: Any, gpus: list[dict[str, Any]]) -> list[str]:
    """Pre-flight: GPUs the cell asks for exist, and the GPUs support the precision asked for."""
    problems = []
    want = spec.resources.gpus
    if gpus and want > len(gpus):
        problems.append(f"resources.gpus={want} but only {len(gpus)} GPU(s) are visible")
    if not gpus and spec.distributed.backend != "none" and not spec.resources.cpu_processes:
        problems.append(
            f"distributed={spec.distributed.name} needs GPUs and none are visible "
            f"(resources.cpu_processes=true runs it on CPU with gloo, for testing)"
        )
    if spec.distributed.backend == "deepspeed" and spec.distributed.offload_optimizer:
        missing = [tool for tool in (os.environ.get("CXX", "c++"), "ninja") if not shutil.which(tool, path=tool_path())]
        if missing:
            problems.append(
                f"distributed={spec.distributed.name} updates the offloaded optimizer states with DeepSpeed's CPU Adam, "
                f"a C++ op compiled on first use: {' and '.join(missing)} not found on PATH "
                f"(install a C++ compiler, e.g. apt-get install g++, and pip install ninja)"
            )
    if gpus and spec.train.precision == "bf16":
        old = [g for g in gpus[: max(1, want)] if g["compute_cap"] is not None and g["compute_cap"] < 8.0]
        if old:
            problems.append(
                f"train.precision=bf16 but {old[0]['name']} (compute capability {old[0]['compute_cap']}) "
                f"has no bf16; use train.precision=fp16 or auto"
            )
    return problems
