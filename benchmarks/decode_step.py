"""What one greedy decoding step costs in the generation engine, by batch size and cache, on real prompts.

Times ``jsweep.eval.generate.generate_batch`` on JSQuAD dev prompts (context and question, about 370
tokens with llm-jp-3's tokenizer): a batch decoding 1 token and N tokens, so that
``(t_N - t_1) / (N - 1)`` is the cost of a step, for several batch sizes, with transformers' dynamic
KV cache (the engine's) twice in a row (first shapes, then the same shapes again) and with a static
cache without compilation. Each with PyTorch's own choice of attention kernel (cuDNN on Hopper) and as the engine runs it (no cuDNN
attention while decoding: jsweep.eval.generate.attention_backends). Then a profile of one decode as the
engine runs it: the top operators by CPU and CUDA time.
Prints figures and writes JSON (``--out``).

    python benchmarks/decode_step.py --jglue .bench/jglue-v1.3 --set model.source=.bench/llm-jp-3-tokenizer
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

STATIC = {"cache_implementation": "static", "disable_compile": True}


def prompts(jglue: Path) -> list[str]:
    data = json.loads((jglue / "jsquad" / "valid-v1.3.json").read_text(encoding="utf-8"))
    return [
        f"文章:{p['context']}\n質問:{q['question']}\n回答:"
        for a in data["data"]
        for p in a["paragraphs"]
        for q in p["qas"]
    ]


def main() -> None:
    import torch

    from jsweep.compose import compose_spec
    from jsweep.eval import generate as G
    from jsweep.eval.generate import generate_batch
    from jsweep.models.load import load_model, load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jglue", type=Path, required=True)
    ap.add_argument("--model", default="llm-jp-3-1.8b")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--rows", default="1,8,49,128,256")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/decode_step.json"))
    args = ap.parse_args()
    spec = compose_spec([f"model={args.model}", "model.init=random", *args.set])
    tok = load_tokenizer(spec.model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model = load_model(spec.model, device=device).to(device).eval()
    texts = prompts(args.jglue)
    ids = tok(texts[:2000], add_special_tokens=True).input_ids

    def timed(rows, new, offset, extra=None):
        batch = ids[offset : offset + rows]
        sync()
        t = time.perf_counter()
        generate_batch(model, tok, batch, new, False, extra)
        sync()
        return time.perf_counter() - t

    timed(8, 4, 0)  # load the kernels once
    report = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "model": args.model,
        "overrides": args.set,
        "runs": [],
    }
    offset = 8
    for rows in map(int, args.rows.split(",")):
        for label, extra, again, cudnn in (
            ("dynamic, cuDNN attention allowed, new prompts", None, False, True),
            ("dynamic, cuDNN attention allowed, same prompts again", None, True, True),
            ("dynamic, engine (no cuDNN attention), new prompts", None, False, False),
            ("static eager, cuDNN attention allowed, new prompts", STATIC, False, True),
            ("static eager, engine (no cuDNN attention), new prompts", STATIC, False, False),
        ):
            G.CUDNN_DECODING = cudnn
            at = offset - rows if again else offset
            t1 = timed(rows, 1, at, extra)
            tn = timed(rows, args.steps, at, extra)
            if not again:
                offset += rows
            ms = 1000 * (tn - t1) / (args.steps - 1)
            run = {"rows": rows, "cache": label, "prefill_s": round(t1, 3), "ms_per_step": round(ms, 2)}
            report["runs"].append(run)
            print(run, flush=True)
    # one decode on new prompts, profiled
    from torch.profiler import ProfilerActivity, profile

    batch = ids[offset : offset + 49]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        generate_batch(model, tok, batch, 32, False, None)
        sync()
    for key in ("self_cpu_time_total",) + (("self_cuda_time_total",) if device == "cuda" else ()):
        table = prof.key_averages().table(sort_by=key, row_limit=18)
        print(table, flush=True)
        report[f"profile_{key}"] = table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
