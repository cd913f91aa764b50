"""Distributed proofs: single multi-GPU cells run through the CLI, one per method and ZeRO stage,
each trained, saved, and (where asked) evaluated from the saved model in a fresh process.

    python benchmarks/distributed_proofs.py                                  # 2 GPUs, llm-jp-3-1.8b shape
    python benchmarks/distributed_proofs.py --model tiny --cpu --only zero2_sft_lora   # plumbing check on CPU

Each proof is its own jsweep run (own output_root, MLflow experiment ``proof-<name>``). The JSON
holds, per proof: the command, exit code, cell status, wall time, the cell's MLflow metrics
(throughput, MFU, memory, time split, losses, scores), the ZeRO stage of the generated
deepspeed.json, and the saved model's files. Written after each proof, so a cut run keeps what
finished.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# name -> overrides. Between them: SFT and DPO, full and LoRA, ZeRO-2 and ZeRO-3.
PROOFS: dict[str, list[str]] = {
    # (b) + (d): full SFT under ZeRO-3 over 2 GPUs, gathered save, then llm-jp-eval and JGLUE on the saved model
    "zero3_sft_full": [
        "method=sft_full",
        "dataset=dolly",
        "distributed=zero3",
        "train.max_steps=10",
        "eval=[llm_jp_eval,jglue]",
        "eval.llm_jp_eval.max_num_samples=10",
        "eval.jglue.limit=10",
    ],
    # (c): full DPO under ZeRO-2 (policy + frozen reference), saved and evaluated
    "zero2_dpo": [
        "method=dpo",
        "dataset=hh_rlhf_ja",
        "distributed=zero2",
        "train.max_steps=8",
        "train.micro_batch_size=2",
        "eval=[llm_jp_eval]",
        "eval.llm_jp_eval.max_num_samples=10",
    ],
    # LoRA under each stage: the adapter is saved, and evaluation loads it over the base model
    "zero2_sft_lora": [
        "method=sft_lora",
        "dataset=dolly",
        "distributed=zero2",
        "train.max_steps=10",
        "eval=[llm_jp_eval]",
        "eval.llm_jp_eval.max_num_samples=10",
    ],
    # full DPO under ZeRO-3: the frozen reference is rebuilt under zero.Init and copied, gathered, from the policy
    "zero3_dpo": [
        "method=dpo",
        "dataset=hh_rlhf_ja",
        "distributed=zero3",
        "train.max_steps=8",
        "train.micro_batch_size=2",
        "eval=[llm_jp_eval]",
        "eval.llm_jp_eval.max_num_samples=10",
    ],
    "zero3_dpo_lora": [
        "method=dpo_lora",
        "dataset=hh_rlhf_ja",
        "distributed=zero3",
        "train.max_steps=8",
        "train.micro_batch_size=2",
        "eval=[llm_jp_eval]",
        "eval.llm_jp_eval.max_num_samples=10",
    ],
}

KEEP = ("train/", "eval/", "llm_jp_eval/AVG", "jglue/AVG", "gpu/", "time/", "rewards/")


def run_cell(cmd: list[str], timeout: float, tail: int = 2000) -> tuple[int | str, str, float]:
    """Run one jsweep command: (exit code or "timeout", the end of its output, wall seconds)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=dict(os.environ), text=True, capture_output=True, timeout=timeout)
        rc: int | str = proc.returncode
        out = proc.stdout[-tail:] + proc.stderr[-tail:]
    except subprocess.TimeoutExpired as exc:
        rc, out = "timeout", str(exc.stdout or "")[-tail:]
    return rc, out, time.perf_counter() - t0


def collect(out: Path) -> dict:
    """What a finished one-cell run under ``out`` left: status, error, time, the cell's kept MLflow
    metrics, the ZeRO stage of its deepspeed.json and the saved model's files (with a LoRA adapter's
    saved base, if any)."""
    summaries = sorted((out / "sweeps").rglob("summary.json")) if (out / "sweeps").exists() else []
    if not summaries:
        return {}
    cell = json.loads(summaries[-1].read_text())["cells"][0]
    entry: dict = {
        "status": cell["status"],
        "error": cell["error"],
        "cell_seconds": cell["seconds"],
        "metrics": {
            k: round(v, 4) if isinstance(v, (int, float)) else v
            for k, v in cell["metrics"].items()
            if k.startswith(KEEP)
        },
    }
    cell_dir = Path(cell["log"]).parent
    ds = cell_dir / "deepspeed.json"
    if ds.exists():
        entry["zero_stage"] = json.loads(ds.read_text())["zero_optimization"]["stage"]
    model_dir = cell_dir / "model"  # full weights, or the LoRA adapter the evaluation applies
    if model_dir.is_dir():
        entry["saved_model"] = {
            str(p.relative_to(model_dir)): p.stat().st_size for p in sorted(model_dir.rglob("*")) if p.is_file()
        }
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="llm-jp-3-1.8b")
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--only", default=",".join(PROOFS), help="comma-separated proof names")
    parser.add_argument("--cpu", action="store_true", help="run the ranks on CPU with gloo (plumbing check)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per proof")
    parser.add_argument("--work", type=Path, default=Path("/tmp/jsweep-proofs"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "distributed_proofs.json")
    args = parser.parse_args()
    report = json.loads(args.out.read_text()) if args.out.exists() else {"proofs": {}}
    for name in args.only.split(","):
        out = args.work / name
        cmd = [
            sys.executable,
            "-m",
            "jsweep",
            f"model={args.model}",
            "model.init=random",
            "data_source=fixture",
            f"resources.gpus={args.gpus}",
            f"train.max_length={args.seq}",
            *PROOFS[name],
            f"output_root={out}",
            f"tracking.experiment=proof-{name}",
            "launcher.stream_logs=false",
            "launcher.rerun=true",
            *(["resources.cpu_processes=true"] if args.cpu else []),
        ]
        print(f"== {name}: {' '.join(cmd[2:])}", flush=True)
        rc, tail, wall = run_cell(cmd, args.timeout)
        print(tail, flush=True)
        entry: dict = {"command": "python -m jsweep " + " ".join(cmd[3:]), "rc": rc, "wall_s": round(wall, 1)}
        entry.update(collect(out))
        report["proofs"][name] = entry
        print(f"== {name}: rc={rc} status={entry.get('status')} wall={wall:.0f}s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
