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


def train_command(cell_dir: str, nproc: int) -> list[str]:
    """torchrun for the training stage of a multi-process cell. ``--standalone``: its rendezvous store
    listens on a port the OS picks as it binds, and the ranks' process group uses that store. A port
    chosen beforehand is a race: two sweeps on one machine (or two jobs on one Slurm node) gave their
    first multi-GPU cells 29500, and the second cell failed at once (EADDRINUSE), even when it checked
    the port first, since torchrun binds seconds later."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
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


# What host memory a ZeRO cell that offloads to the CPU needs beyond DeepSpeed's estimate of its model
# states: measured on 2x H200 with a 12.86B model (benchmarks/README.md, issue 20). Optimizer states
# offloaded: 16 bytes a parameter, 206 GB, and the ranks peaked at 254 GB (x1.23); it trained on a
# 270 GB node. Parameters offloaded too: 18 bytes a parameter, 231 GB, killed for memory at 266 GB on
# that node. DeepSpeed's own estimator adds 50% (additional_buffer_factor=1.5), which would have refused
# the run that trained.
OFFLOAD_OVERHEAD = 1.2


def offload_state_bytes(params: int, zero_stage: int, offload_param: bool, gpus_per_node: int) -> int:
    """Host memory of the model states of a ZeRO cell that offloads its optimizer, on one node, without
    DeepSpeed's buffer factor: ``estimate_zero3_model_states_mem_needs`` (with zero.Init, as jsweep builds
    ZeRO-3 models) and ``estimate_zero2_model_states_mem_needs`` (each rank also holds the whole model
    while it loads) from deepspeed.runtime.zero."""
    if zero_stage == 3:
        return params * (18 if offload_param else 16)
    return params * max(4 * gpus_per_node, 16)


def host_memory_bytes(meminfo: str = "/proc/meminfo", cgroup: str = "/sys/fs/cgroup/memory.max") -> int | None:
    """The memory this process's node lets it use: its cgroup's limit where one is set (a Slurm job's
    --mem, a container), else the node's MemTotal; None where neither can be read."""
    from pathlib import Path

    try:
        limit = Path(cgroup).read_text().strip()
        if limit.isdigit():
            return int(limit)
    except OSError:
        pass
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_offload_memory(spec: Any, params: int, gpus_per_node: int, host: int | None) -> str | None:
    """The problem with a cell that offloads to host memory it does not have, or None. A cell killed
    by the kernel for memory minutes into its start says nothing; this says why, and what to change."""
    d = spec.distributed
    if d.backend != "deepspeed" or not d.offload_optimizer or host is None:
        return None
    offload_param = bool(d.offload_param) and d.zero_stage == 3
    states = offload_state_bytes(params, d.zero_stage, offload_param, gpus_per_node)
    need = states * OFFLOAD_OVERHEAD
    if need <= host:
        return None
    what = "optimizer states and parameters" if offload_param else "optimizer states"
    fixes = ["more GPUs without offload (distributed=zero3)"]
    if offload_param:
        fixes.append("the parameters kept on the GPUs (distributed.offload_param=false)")
    fixes.append("a node with more memory")
    return (
        f"distributed={d.name} offloads the {what} of {params / 1e9:.2f}B parameters to host memory: "
        f"about {need / 1e9:.0f} GB on this node ({states // params} bytes a parameter, DeepSpeed's estimate "
        f"of the model states, and {OFFLOAD_OVERHEAD - 1:.0%} for buffers), but it has {host / 1e9:.0f} GB; "
        f"use {', or '.join(fixes)}"
    )


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
