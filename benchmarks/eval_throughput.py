"""Evaluation throughput: jsweep's generation engine against one-by-one generation and the previous
default, side by side on the same model and prompts, on llm-jp-eval tasks prepared offline from the
real JGLUE dev files; and, with ``--harness``, the full JGLUE dev sets through lm-evaluation-harness.

    python benchmarks/eval_throughput.py --jglue ../shared/data/jglue-v1.3 --samples 100 --harness

Modes (each generates every request; outputs are compared with one-by-one greedy decoding):
- ``one_by_one``: batch 1, no prefix sharing (what the reference tools do);
- ``previous_default``: 16 rows per batch, no prefix sharing (jsweep's default before the engine);
- ``batch_32``: 32 rows per batch, no prefix sharing (the figure the issue measured);
- ``auto_no_prefix``: batches sized by memory, no prefix sharing;
- ``engine``: the new default, batches sized by memory and the shared prefix computed once;
- ``engine_static``: batches sized by memory with transformers' static KV cache (which compiles the
  decoding step), no prefix sharing: measured to decide whether it pays;
- ``engine_static_eager``: the same static KV cache without compilation (the cache is allocated once
  per batch instead of growing by concatenation at every step), no prefix sharing.

Prints samples/s and ratios, and writes ``benchmarks/results/eval_throughput.json`` with a
``samples_per_second`` value per mode. The model is llm-jp-3-1.8b's architecture with random
weights (no download): it never emits EOS early, so every mode generates each task's full
output_length per sample.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
import types
from pathlib import Path

from jsweep.compose import compose_spec
from jsweep.eval.generate import Request, generate
from jsweep.eval.llm_jp_eval.evaluator import build_prompt, load_tasks
from jsweep.eval.llm_jp_eval.prepare import prepare_jglue

MODES = {
    "one_by_one": (1, False),
    "previous_default": (16, False),
    "batch_32": (32, False),
    "auto_no_prefix": ("auto", False),
    "engine": ("auto", True),
    "engine_static": ("auto", False),
    "engine_static_eager": ("auto", False),
}
EXTRA = {
    "engine_static": {"cache_implementation": "static"},
    # a preallocated KV cache without compilation: no cache growth by concatenation at every step
    "engine_static_eager": {"cache_implementation": "static", "disable_compile": True},
}


def timed(fn, cuda: bool):
    import torch

    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


class Phases:
    """Wall time of the harness run's phases, measured by wrapping (not replacing) the methods that do
    them: task building (data files read, prompts rendered), the batch-size search, loglikelihood
    (JCommonsenseQA, JNLI) and generate_until (JSQuAD) requests."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, list] = {}

    def wrap(self, name: str, fn, cuda: bool):
        def timed_call(*args, **kwargs):
            before = runtime_counters(cuda)
            out, dt = timed(lambda: fn(*args, **kwargs), cuda)
            after = runtime_counters(cuda)
            self.seconds[name] = round(self.seconds.get(name, 0.0) + dt, 2)
            n = len(args[0]) if args and hasattr(args[0], "__len__") else None
            self.calls.setdefault(name, []).append(
                {
                    "seconds": round(dt, 2),
                    "requests": n,
                    **({"result": out} if isinstance(out, int) else {}),
                    "counters": {k: round(after[k] - before.get(k, 0), 3) for k in after},
                }
            )
            return out

        return timed_call


GC_SECONDS = [0.0]
_GC_START = [0.0]


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _GC_START[0] = time.perf_counter()
    else:
        GC_SECONDS[0] += time.perf_counter() - _GC_START[0]


def runtime_counters(cuda: bool) -> dict[str, float]:
    """What a phase spends outside its kernels: Python's garbage collections and their seconds, and, on a
    GPU, the caching allocator's cudaMalloc/cudaFree calls and its retries (cache freed to satisfy a request)."""
    import gc

    if _gc_timer not in gc.callbacks:
        gc.callbacks.append(_gc_timer)
    out: dict[str, float] = {f"gc_gen{i}_collections": float(s["collections"]) for i, s in enumerate(gc.get_stats())}
    out["gc_seconds"] = GC_SECONDS[0]
    if cuda:
        import torch

        stats = torch.cuda.memory_stats()
        for key in ("num_alloc_retries", "num_device_alloc", "num_device_free", "num_sync_all_streams"):
            if key in stats:
                out[key] = float(stats[key])
    return out


def harness_full(jglue: Path, model, tokenizer, out_dir: Path, tasks: list[str], options: dict | None = None) -> dict:
    """Full JGLUE dev sets through the harness (JP-Stable prompts), batch size auto unless ``options`` say."""
    import torch

    from jsweep.eval.jglue import evaluator as J
    from jsweep.eval.jglue import lm as LM
    from jsweep.tracking import NullTracker

    cuda = torch.cuda.is_available()
    phases = Phases()
    make_lm, build = LM.harness_lm, J.JGlueEval.build_tasks

    contexts: dict[str, list[str]] = {}  # the prompts each request type saw, counted in tokens after the run

    def recording(name, fn):
        def run(requests, *args, **kwargs):
            contexts.setdefault(name, []).extend(r.args[0] for r in requests)
            return fn(requests, *args, **kwargs)

        return run

    def instrumented_lm(*args, **kwargs):
        lm = make_lm(*args, **kwargs)
        for name in ("loglikelihood", "_loglikelihood_tokens", "generate_until", "_detect_batch_size"):
            setattr(lm, name, phases.wrap(name, getattr(lm, name), cuda))
        for name in ("loglikelihood", "generate_until"):
            setattr(lm, name, recording(name, getattr(lm, name)))
        return lm

    ctx = types.SimpleNamespace(
        cell_dir=out_dir,
        tracker=NullTracker(),
        device="cuda",
        spec=types.SimpleNamespace(tracking=types.SimpleNamespace(log_predictions=False)),
    )
    options = {"data_dir": str(jglue), "marc_ja": False, "batch_size": "auto", "tasks": tasks, **(options or {})}
    evaluator = J.JGlueEval(options)
    LM.harness_lm, J.JGlueEval.build_tasks = instrumented_lm, phases.wrap("build_tasks", build, False)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        metrics, seconds = timed(lambda: evaluator.evaluate(ctx, model, tokenizer), cuda)
    finally:
        LM.harness_lm, J.JGlueEval.build_tasks = make_lm, build
    result = json.loads((out_dir / "jglue_results.json").read_text())
    docs = {t: info.get("n_scored") for t, info in result["tasks"].items()}
    print(f"harness {options}, full JGLUE dev sets {docs}: {seconds:.1f} s; phases {phases.seconds}", flush=True)
    log = out_dir / "jglue_harness.log"
    prompt_tokens = {}  # outside the timed run: what the tokenizer makes of the requests' contexts
    for name, texts in contexts.items():
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []
        prompt_tokens[name] = {
            "requests": len(texts),
            "tokens": sum(lengths),
            "mean": round(sum(lengths) / max(len(lengths), 1), 1),
            "characters_per_token": round(sum(map(len, texts)) / max(sum(lengths), 1), 3),
        }
    print(f"context tokens by request type: {prompt_tokens}", flush=True)
    return {
        "prompt_tokens": prompt_tokens,
        "options": {k: v for k, v in options.items() if k != "data_dir"},
        "seconds": round(seconds, 1),
        "documents": docs,
        "phases_seconds": phases.seconds,
        "phase_calls": phases.calls,
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None,
        "metrics": metrics,
        "harness_log": [
            ln
            for ln in (log.read_text().splitlines() if log.exists() else [])
            if ln[:4].isdigit() and "it/s]" not in ln
        ][-60:],
    }


def harness_ratios(runs: list[dict]) -> dict:
    """Each harness run against the first: total and per-phase speed-ups (time of the first / time of
    this one), tokenization = loglikelihood minus its forward passes, and whether the scores are equal."""
    base = runs[0]
    out = {}

    def phase(run: dict, name: str) -> float | None:
        p = run.get("phases_seconds", {})
        if name == "tokenization":
            if "loglikelihood" not in p or "_loglikelihood_tokens" not in p:
                return None
            return round(p["loglikelihood"] - p["_loglikelihood_tokens"], 2)
        return p.get(name)

    for run in runs[1:]:
        if "seconds" not in run or "seconds" not in base:
            continue
        label = ",".join(f"{k}={v}" for k, v in run["options"].items() if base["options"].get(k) != v) or "same"
        row = {"total": round(base["seconds"] / run["seconds"], 2)}
        for name in ("loglikelihood", "_loglikelihood_tokens", "tokenization", "generate_until"):
            a, b = phase(base, name), phase(run, name)
            if a and b:
                row[name] = round(a / b, 2)
        row["same_scores"] = run.get("metrics") == base.get("metrics")
        row["max_score_difference"] = max(
            (abs(run["metrics"][k] - v) for k, v in base.get("metrics", {}).items() if k in run.get("metrics", {})),
            default=None,
        )
        out[label] = row
        print(f"harness {label} vs first run: {row}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jglue", type=Path, required=True, help="raw JGLUE v1.3 directory")
    parser.add_argument("--model", default="llm-jp-3-1.8b", help="model preset (built with random weights)")
    parser.add_argument("--samples", type=int, default=100, help="samples per task")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated subset of: " + ", ".join(MODES) + " (none = harness only)",
    )
    parser.add_argument("--harness", action="store_true", help="also time the full JGLUE dev sets through the harness")
    parser.add_argument("--harness-tasks", default="jcommonsenseqa,jnli,jsquad", help="JGLUE tasks for --harness")
    parser.add_argument(
        "--harness-variants",
        default="",
        help="eval.jglue options per harness run, runs separated by ';', options by ',', e.g. "
        "'generation=harness;generation=engine,batch_size=256' (default: one run, jsweep's defaults)",
    )
    parser.add_argument(
        "--harness-limit", type=int, default=None, help="eval.jglue.limit for --harness: the first N docs per task"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model override, e.g. --set model.arch.num_hidden_layers=4 (a smaller model of the preset's shape)",
    )
    parser.add_argument(
        "--one-by-one-per-task",
        type=int,
        default=None,
        help="one_by_one runs on the first N samples of each task only (its rate is per sample)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_throughput.json")
    args = parser.parse_args()

    import torch

    from jsweep.models.load import load_model, load_tokenizer

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    modes = [] if args.modes in ("", "none") else args.modes.split(",")
    tasks = []
    if modes:
        with tempfile.TemporaryDirectory() as tmp:
            prepare_jglue(args.jglue, Path(tmp), allow_missing_train=True)  # throughput only: dev-only copies do
            tasks = load_tasks({"data_dir": tmp, "max_num_samples": args.samples, "num_few_shots": 4})
    requests = [Request(build_prompt(t, s.input), t.output_length) for t in tasks for s in t.samples]
    if not requests:  # harness only: a warm-up of the same shape as before
        requests = [Request("東京は日本の首都です。" * 40 + "質問: 日本の首都は?\n回答:", 8)] * 8
    spec = compose_spec([f"model={args.model}", "model.init=random", *args.set])
    tokenizer = load_tokenizer(spec.model)
    model = load_model(spec.model, device=device).to(device).eval()
    prompt_tokens = [len(tokenizer(r.prompt, add_special_tokens=False).input_ids) for r in requests]
    print(
        f"{len(requests)} requests, prompts {sum(prompt_tokens) / len(prompt_tokens):.0f} tokens on average, "
        f"{sum(r.max_new_tokens for r in requests)} new tokens in all",
        flush=True,
    )
    generate(model, tokenizer, requests[:8], batch_size=8, label="warmup", add_special_tokens=False)

    results, outputs = {}, {}
    per_task = args.one_by_one_per_task
    subset = [
        i
        for t_i, t in enumerate(tasks)
        for i in range(
            sum(len(x.samples) for x in tasks[:t_i]),
            sum(len(x.samples) for x in tasks[:t_i]) + min(len(t.samples), per_task or len(t.samples)),
        )
    ]
    report = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": f"{args.model} (random)",
        "model_overrides": args.set,
        "tasks": {t.name: len(t.samples) for t in tasks},
        "modes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def run_harness():
        runs = []
        for variant in args.harness_variants.split(";") if args.harness_variants else [""]:
            options = {
                k: int(v) if v.isdigit() else v for k, v in (kv.split("=", 1) for kv in variant.split(",") if kv)
            }
            if args.harness_limit:
                options.setdefault("limit", args.harness_limit)
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    runs.append(
                        harness_full(args.jglue, model, tokenizer, Path(tmp), args.harness_tasks.split(","), options)
                    )
                except Exception as exc:
                    runs.append({"options": options, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
                    print(f"harness {options} failed: {runs[-1]['error']}", flush=True)
            report["harness_full_jglue_dev"] = runs
            args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        if len(runs) > 1:
            report["harness_ratios"] = harness_ratios(runs)
            args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))

    if args.harness and "engine" not in modes:
        run_harness()
    for mode in modes:
        bs, share = MODES[mode]
        reqs = [requests[i] for i in subset] if mode == "one_by_one" else requests
        try:
            # partial binds this mode's arguments now (timed calls it at once; a lambda would read the loop's names)
            outputs[mode], seconds = timed(
                functools.partial(
                    generate,
                    model,
                    tokenizer,
                    reqs,
                    batch_size=bs,
                    label=mode,
                    add_special_tokens=False,
                    share_prefix=share,
                    generate_kwargs=EXTRA.get(mode),
                ),
                cuda,
            )
        except Exception as exc:  # a mode that fails is recorded, the others still run
            results[mode] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            print(f"{mode:17} failed: {results[mode]['error']}", flush=True)
            continue
        results[mode] = {
            "batch_size": bs,
            "share_prefix": share,
            "seconds": round(seconds, 2),
            "samples": len(reqs),
            "samples_per_second": round(len(reqs) / seconds, 2),
        }
        print(
            f"{mode:17} batch {bs!s:5} prefix {share!s:5} {len(reqs)} samples in {seconds:7.2f} s  "
            f"{len(reqs) / seconds:8.2f} samples/s",
            flush=True,
        )
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))  # kept if cut short
        if mode == "engine" and args.harness:
            run_harness()
    ref = outputs.get("one_by_one")
    for mode, outs in outputs.items():
        if ref is not None and "samples_per_second" in results[mode]:
            mine = outs if mode == "one_by_one" else [outs[i] for i in subset]
            results[mode]["identical_to_one_by_one"] = round(sum(a == b for a, b in zip(mine, ref)) / len(ref), 3)
    base = results.get("one_by_one", {}).get("samples_per_second")
    prev = results.get("previous_default", {}).get("samples_per_second")
    ratios = {}
    for mode, r in results.items():
        if "samples_per_second" not in r:
            continue
        if base:
            ratios[f"{mode}_vs_one_by_one"] = round(r["samples_per_second"] / base, 2)
        if prev:
            ratios[f"{mode}_vs_previous_default"] = round(r["samples_per_second"] / prev, 2)
    for k, v in ratios.items():
        print(f"{k:40} {v:6.2f}x")
    report.update(prompt_tokens_mean=round(sum(prompt_tokens) / len(prompt_tokens), 1), ratios=ratios)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
