"""Sweep throughput: the makespan of one grid with cells packed onto single GPUs, against one
cell at a time spread over all GPUs (ZeRO-3, and DDP). Runs real sweeps through the CLI.

    python benchmarks/make_data.py --out .bench/long.jsonl
    python benchmarks/sweep_throughput.py --data .bench/long.jsonl --cells 4 --steps 60 --modes packed,zero3,ddp
    # the same grid with each cell saved and evaluated (llm-jp-eval on tasks prepared from JGLUE dev files)
    python benchmarks/sweep_throughput.py --data .bench/long.jsonl --eval-jglue .bench/jglue-v1.3 --modes packed,ddp

Each mode is a separate sweep (own output_root and MLflow experiment) of the same ``--cells``
learning rates, with the same global batch and steps, so the same tokens per cell; results are appended to benchmarks/results/sweep_throughput.json after each mode,
so modes can run in separate invocations. Prints makespans, per-cell tokens/s per GPU, MFU,
peak memory, and the packed/other ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def mode_overrides(mode: str, gpus: int) -> list[str]:
    """Every mode trains the same global batch (micro x accumulation x GPUs) for the same steps, so
    each cell sees the same tokens: packed 1-GPU cells accumulate over ``gpus`` micro-batches."""
    return {
        "packed": ["resources.gpus=1", f"train.grad_accum={gpus}"],
        "zero3": ["distributed=zero3", f"resources.gpus={gpus}"],
        "ddp": ["distributed=ddp", f"resources.gpus={gpus}"],
    }[mode]


def common(args: argparse.Namespace, eval_data: Path | None) -> list[str]:
    """Training as in every mode. Without ``eval_data`` cells only train; with it each cell also saves
    its model and runs llm-jp-eval (in one process, on one GPU, for a multi-GPU cell)."""
    evaluation = (
        ["train.save_model=false", "eval=[]"]
        if eval_data is None
        else [
            "train.save_model=true",
            "eval=[llm_jp_eval]",
            f"eval.llm_jp_eval.data_dir={eval_data}",
            f"eval.llm_jp_eval.batch_size={args.eval_batch}",
        ]
    )
    return [
        f"model={args.model}",
        "model.init=random",
        "dataset=generic",
        f"dataset.path={args.data.resolve()}",
        "data_source=path",
        f"method={args.method}",
        f"train.max_length={args.seq}",
        f"train.micro_batch_size={args.micro}",
        f"train.max_steps={args.steps}",
        "train.eval_fraction=0",
        "train.checkpoint_steps=-1",
        "train.logging_steps=10",
        *evaluation,
        "train.gradient_checkpointing=" + str(args.grad_ckpt).lower(),
    ]


def prepare_eval(args: argparse.Namespace) -> Path | None:
    """llm-jp-eval data prepared offline from raw JGLUE files, once per work directory."""
    if args.eval_jglue is None:
        return None
    from jsweep.eval.llm_jp_eval.prepare import prepare_jglue

    out = (args.work / "llm-jp-eval-data").resolve()
    if not out.exists():
        prepare_jglue(args.eval_jglue, out, allow_missing_train=True)  # throughput only: dev-only copies do
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="llm-jp-3-1.8b")
    parser.add_argument("--method", default="sft_full")
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--gpus", type=int, default=2, help="GPUs of the machine (= GPUs of a multi-GPU cell)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--micro", type=int, default=4)
    parser.add_argument("--grad-ckpt", action="store_true")
    parser.add_argument("--modes", default="packed,zero3,ddp")
    parser.add_argument("--eval-jglue", type=Path, help="raw JGLUE v1.3 dir: also save and evaluate every cell")
    parser.add_argument("--eval-samples", type=int, default=100, help="llm-jp-eval samples per task")
    parser.add_argument("--eval-batch", type=int, default=32)
    parser.add_argument("--work", type=Path, default=Path("/tmp/jsweep-bench"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sweep_throughput.json")
    args = parser.parse_args()
    setup = {k: str(v) for k, v in vars(args).items() if k not in ("modes", "out", "work")}
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    if report.get("setup") != setup:  # modes are compared only when measured with the same setup
        report = {"setup": setup, "modes": {}}
    eval_data = prepare_eval(args)
    lrs = ",".join(f"{(i + 1) * 1e-5:g}" for i in range(args.cells))
    for mode in args.modes.split(","):
        out = args.work / mode
        cmd = [
            sys.executable,
            "-m",
            "jsweep",
            "-m",
            f"lr={lrs}",
            *common(args, eval_data),
            *mode_overrides(mode, args.gpus),
            f"output_root={out}",
            f"tracking.experiment=bench-{mode}",
            "launcher.stream_logs=false",
            "launcher.rerun=true",
        ]  # a benchmark always runs its cells, even if an earlier run finished them
        print(f"== {mode}: {' '.join(cmd[2:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=dict(os.environ), text=True, capture_output=True)
        makespan = time.perf_counter() - t0
        print(proc.stdout[-2500:], proc.stderr[-2500:], flush=True)
        summary = json.loads(next((out / "sweeps").rglob("summary.json")).read_text())
        cells = [
            {
                "lr": c["label"],
                "status": c["status"],
                "seconds": c["seconds"],
                **{
                    k: round(v, 4)
                    for k, v in c["metrics"].items()
                    if k
                    in (
                        "train/tokens_per_second",
                        "train/tokens_per_second_per_gpu",
                        "train/mfu",
                        "gpu/peak_memory_gb",
                        "time/setup_seconds",
                        "time/train_seconds",
                        "time/eval_seconds",
                        "time/total_seconds",
                        "llm_jp_eval/AVG",
                        "llm_jp_eval/AVG_partial",
                        "gpu/hours",
                    )
                },
            }
            for c in summary["cells"]
        ]
        tokens = sum(c["metrics"].get("train/tokens", 0) for c in summary["cells"])
        report["modes"][mode] = {
            "command": "python -m jsweep " + " ".join(cmd[3:]),
            "rc": proc.returncode,
            "global_batch": args.micro * args.gpus,
            "makespan_s": round(makespan, 1),
            "tokens": tokens,
            "tokens_per_s_overall": round(tokens / makespan, 1),
            "cells": cells,
        }
        print(
            f"== {mode}: makespan {makespan:.1f} s, {tokens / makespan:,.0f} tokens/s over the whole sweep", flush=True
        )
        modes = report["modes"]
        if "packed" in modes:
            report["ratios"] = {
                f"packed_vs_{m}": round(modes[m]["makespan_s"] / modes["packed"]["makespan_s"], 2)
                for m in modes
                if m != "packed"
            }
            print("makespan ratios (other / packed):", report["ratios"], flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
