"""A 13B full fine-tuning cell under ZeRO-3 on a 4-GPU node, its CPU-offload variant and a LoRA cell
(issue 20), each a real jsweep run through the CLI, with its cost.

    python benchmarks/zero3_13b.py --jglue .bench/jglue-v1.3                       # all three, 4 GPUs
    python benchmarks/zero3_13b.py --jglue .bench/jglue-v1.3 --only zero3          # one of them
    python benchmarks/zero3_13b.py --cpu --layers 1 --seq 128 --steps 2 --only zero3   # plumbing check on CPU (gloo)

The model is llm-jp-13b-v1.0's architecture (GPT-2, hidden 5120, 40 layers, vocabulary 50,688:
12.9B parameters) with random weights, since none can be downloaded. The data is the training
throughput benchmark's realistic length mix (``cell_throughput.build_records``: dolly-ja's lengths,
Japanese text cut from the real JGLUE v1.3 files), written once as a JSON-lines file and read
through ``dataset=generic``, packed padding-free into rows of ``--seq`` tokens. Each cell trains a
bounded number of steps, saves a complete model (ZeRO-3 gathers the shards on save; LoRA saves its
adapter and, since the base weights are random, the base beside it), then evaluates the saved
model on a small llm-jp-eval subset in a fresh process on one GPU.

The JSON (``--out``, rewritten after each cell) holds per cell: the command, exit code, status, wall
time, the cell's MLflow metrics (tokens/s per GPU, MFU, peak GPU memory, time split, losses, the
llm-jp-eval AVG), the ZeRO stage of its deepspeed.json, the saved files and the host's peak resident
memory of the training processes (what CPU offload costs).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from cell_throughput import build_records  # noqa: E402
from distributed_proofs import collect, run_cell  # noqa: E402

GC = "train.gradient_checkpointing=true"
CELLS: dict[str, list[str]] = {
    # (1) full SFT, parameters, gradients and optimizer states sharded over the GPUs (--micro rows per GPU)
    "zero3": ["method=sft_full", "distributed=zero3"],
    # variants of (1): activation checkpointing, so that bigger micro-batches fit beside the 51 GB of states
    "zero3_gc4": ["method=sft_full", "distributed=zero3", GC, "train.micro_batch_size=4"],
    "zero3_gc8": ["method=sft_full", "distributed=zero3", GC, "train.micro_batch_size=8"],
    # (2) the same with optimizer states and parameters in CPU memory
    "zero3_offload": ["method=sft_full", "distributed=zero3_offload"],
    # (2) LoRA on fewer GPUs: the frozen 13B base in bf16 (26 GB) fits one H200
    "lora": ["method=sft_lora", "distributed=none", GC],
}


def merged(*groups: list[str]) -> list[str]:
    """Hydra overrides, a later group's value winning for the same key (Hydra refuses duplicates)."""
    out: dict[str, str] = {}
    for group in groups:
        for o in group:
            out[o.split("=", 1)[0].lstrip("+")] = o
    return list(out.values())


def write_data(path: Path, n: int, jglue: Path | None) -> dict:
    """The length-mix records as a generic JSON-lines file (question / input / answer / id)."""
    examples, facts = build_records(n, jglue)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            row = {"id": ex.id, "question": ex.messages[0].content, "input": ex.input, "answer": ex.messages[1].content}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return facts


def host_rss_watch(stop: threading.Event, peak: dict) -> None:
    """Peak summed resident memory of the jsweep processes (the cell's ranks), sampled every second."""
    import psutil

    me = psutil.Process()
    while not stop.wait(1.0):
        try:
            total = sum(p.memory_info().rss for p in me.children(recursive=True))
        except psutil.Error:
            continue
        peak["bytes"] = max(peak.get("bytes", 0), total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="llm-jp-13b-v1.0")
    parser.add_argument("--only", default=",".join(CELLS), help="comma-separated cell names")
    parser.add_argument("--gpus", type=int, default=4, help="GPUs of the ZeRO-3 cells")
    parser.add_argument("--lora-gpus", type=int, default=1, help="GPUs of the LoRA cell")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--micro", type=int, default=2, help="micro-batch (packed rows of --seq tokens) per GPU")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--offload-steps", type=int, default=6, help="steps of the CPU-offload cell (slow)")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--eval-samples", type=int, default=10, help="llm-jp-eval samples per task")
    parser.add_argument("--layers", type=int, help="cut the architecture to this many layers (plumbing checks)")
    parser.add_argument("--jglue", type=Path, help="JGLUE v1.3 directory: the records' text (else the fixtures')")
    parser.add_argument("--cpu", action="store_true", help="run the ranks on CPU with gloo (plumbing check)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--work", type=Path, default=Path("/tmp/jsweep-13b"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "zero3_13b.json")
    parser.add_argument("--extra", nargs="*", default=[], help="more jsweep overrides for every cell")
    parser.add_argument("--train-only", default="", help="comma-separated cells that neither save nor evaluate")
    args = parser.parse_args()

    data = args.work / "mix.jsonl"
    facts = write_data(data, args.records, args.jglue)
    report = json.loads(args.out.read_text()) if args.out.exists() else {"cells": {}}
    report["data"] = facts
    for name in args.only.split(","):
        out = args.work / name
        gpus = args.lora_gpus if name == "lora" else args.gpus
        steps = args.offload_steps if name == "zero3_offload" else args.steps
        overrides = merged(
            [
                f"model={args.model}",
                "model.init=random",
                *([f"model.arch.num_hidden_layers={args.layers}"] if args.layers else []),
                f"resources.gpus={gpus}",
                "dataset=generic",
                f"dataset.path={data}",
                "+dataset.field_map.input=input",  # the preset maps question/answer/id; the passage goes in as input
                "dataset.license='benchmark text cut from JGLUE v1.3 (CC BY-SA 4.0)'",
                f"train.max_length={args.seq}",
                f"train.micro_batch_size={args.micro}",
                f"train.max_steps={steps}",
                "train.logging_steps=1",
                "train.checkpoint_steps=-1",  # a 13B ZeRO-3 checkpoint with optimizer states is ~200 GB
                *(
                    []
                    if name in args.train_only.split(",")
                    else ["eval=[llm_jp_eval]", f"eval.llm_jp_eval.max_num_samples={args.eval_samples}"]
                ),
                f"output_root={out}",
                f"tracking.experiment=zero3-13b-{name}",
                "launcher.stream_logs=false",
                "launcher.rerun=true",
                *(["resources.cpu_processes=true"] if args.cpu else []),
            ],
            CELLS[name],
            ["train.save_model=false", "eval=[]"] if name in args.train_only.split(",") else [],
            args.extra,
        )
        cmd = [sys.executable, "-m", "jsweep", *overrides]
        print(f"== {name}: {' '.join(cmd[3:])}", flush=True)
        peak: dict = {}
        stop = threading.Event()
        watcher = threading.Thread(target=host_rss_watch, args=(stop, peak), daemon=True)
        watcher.start()
        rc, tail, wall = run_cell(cmd, args.timeout, tail=3000)
        stop.set()
        print(tail, flush=True)
        entry: dict = {"command": "python -m jsweep " + " ".join(cmd[3:]), "rc": rc, "wall_s": round(wall, 1)}
        entry.update(collect(out))
        entry["host_peak_rss_gb"] = round(peak.get("bytes", 0) / 1e9, 1)
        report["cells"][name] = entry
        print(f"== {name}: rc={rc} status={entry.get('status')} wall={wall:.0f}s", flush=True)
        print(json.dumps({k: v for k, v in entry.items() if k != "command"}, indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
