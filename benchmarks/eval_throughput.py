"""Evaluation throughput: batched against one-by-one generation, on llm-jp-eval tasks prepared
offline from the real JGLUE dev files (``jsweep prepare``), with the same model and prompts.

    python benchmarks/eval_throughput.py --jglue ../shared/data/jglue-v1.3 --samples 100

Prints samples/s of both and their ratio, and writes benchmarks/results/eval_throughput.json.
The default model is llm-jp-3-1.8b's architecture with random weights (no download): it never
emits EOS early, so both modes generate exactly each task's output_length tokens per sample.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from jsweep.compose import compose_spec
from jsweep.eval.generate import Request, generate
from jsweep.eval.llm_jp_eval import build_prompt, load_tasks
from jsweep.tools.prepare import prepare_jglue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jglue", type=Path, required=True, help="raw JGLUE v1.3 directory")
    parser.add_argument("--model", default="llm-jp-3-1.8b", help="model preset (built with random weights)")
    parser.add_argument("--samples", type=int, default=100, help="samples per task")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_throughput.json")
    args = parser.parse_args()

    import torch

    from jsweep.models.load import load_model, load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        prepare_jglue(args.jglue, Path(tmp), allow_missing_train=True)   # throughput only: dev-only copies do
        tasks = load_tasks({"data_dir": tmp, "max_num_samples": args.samples, "num_few_shots": 4})
    requests = [Request(build_prompt(t, s.input), t.output_length) for t in tasks for s in t.samples]
    spec = compose_spec([f"model={args.model}", "model.init=random"])
    tokenizer = load_tokenizer(spec.model)
    model = load_model(spec.model, device=device).to(device).eval()
    generate(model, tokenizer, requests[: args.batch_size], batch_size=args.batch_size, label="warmup")

    results = {}
    outputs = {}
    for mode, bs in (("batched", args.batch_size), ("one_by_one", 1)):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        outputs[mode] = generate(model, tokenizer, requests, batch_size=bs, label=mode)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        results[mode] = {"batch_size": bs, "seconds": round(seconds, 2), "samples": len(requests),
                         "samples_per_second": round(len(requests) / seconds, 2)}
        print(f"{mode:10}  batch {bs:3}  {len(requests)} samples in {seconds:7.1f} s  "
              f"{len(requests) / seconds:7.2f} samples/s", flush=True)
    same = sum(a == b for a, b in zip(outputs["batched"], outputs["one_by_one"])) / len(requests)
    ratio = results["batched"]["samples_per_second"] / results["one_by_one"]["samples_per_second"]
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "model": f"{args.model} (random)",
              "tasks": {t.name: len(t.samples) for t in tasks}, "modes": results, "speedup": round(ratio, 2),
              "identical_outputs": round(same, 3)}
    print(f"batched / one-by-one: {ratio:.2f}x  (identical outputs: {same:.1%})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
