"""Cell throughput on realistic instruction data: plain TRL with padded batches, jsweep's previous SFT
default (one example per row, padded, sdpa) and jsweep's new default (padding-free packing, varlen
attention, Liger kernels), full SFT and LoRA, side by side in one process on one GPU.

    python benchmarks/cell_throughput.py --jglue .bench/jglue-v1.3          # text from the real JGLUE files
    python benchmarks/cell_throughput.py                                    # text from the shipped fixtures

The data set has a realistic length mix: each record's total length (instruction + input + answer) is
drawn from a log-normal fitted to dolly-ja (about 40 / 160 / 780 characters at the 10th / 50th / 90th
percentile), its text cut from JGLUE sentences (or the shipped fixtures). The model is a preset's
architecture with random weights (llm-jp-3-1.8b by default), bf16, sequence length 2048, micro-batch 8.

Each configuration trains ``--warmup`` steps, then is timed for ``--seconds`` (CUDA-synchronised
clock). It reports non-padding tokens/s, MFU (model FLOPs per token over the GPU's dense bf16 peak:
6 * params for full SFT, 4 * params for LoRA, whose frozen weights need no weight gradient), the
padding fraction of its batches, peak GPU memory, and ratios against plain padded TRL. JSON goes to
``--out`` (benchmarks/results/cell_throughput.json), rewritten after each configuration.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name: (runner, method, jsweep overrides). "trl" is what a user writes by hand; "jsweep" is jsweep's SFT trainer.
CONFIGS = {
    "jsweep_new": ("jsweep", "sft_full", []),
    "trl_padded": ("trl", "sft_full", []),
    "jsweep_prev": ("jsweep", "sft_full", ["train.packing=false", "train.attention=sdpa", "train.liger=false"]),
    "jsweep_new_lora": ("jsweep", "sft_lora", []),
    "trl_padded_lora": ("trl", "sft_lora", []),
    "jsweep_prev_lora": ("jsweep", "sft_lora", ["train.packing=false", "train.attention=sdpa", "train.liger=false"]),
    # variants of the new default, one switch at a time
    "jsweep_new_no_liger": ("jsweep", "sft_full", ["train.liger=false"]),
    "jsweep_packed_sdpa": ("jsweep", "sft_full", ["train.attention=sdpa", "train.liger=false"]),  # old packing=true
    "jsweep_new_micro4": ("jsweep", "sft_full", ["train.micro_batch_size=4"]),
    "jsweep_new_micro16": ("jsweep", "sft_full", ["train.micro_batch_size=16"]),
    "jsweep_new_lora_nodropout": ("jsweep", "sft_lora", ["method.lora.dropout=0"]),
    "jsweep_new_lora_r64_mlp": (
        "jsweep",
        "sft_lora",
        ["method.lora.r=64", "method.lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"],
    ),
}
BASELINE = {"sft_full": "trl_padded", "sft_lora": "trl_padded_lora"}

# dolly-ja's record lengths in characters: about 40 / 160 / 780 at the 10th / 50th / 90th percentile.
MEDIAN_CHARS, SIGMA = 160.0, math.log(780 / 160) / 1.2816


def sentences(jglue: Path | None) -> tuple[list[str], list[str], str]:
    """(questions, sentences, source): Japanese text to cut records from."""
    if jglue is not None:
        questions, body = [], []
        squad = json.loads((jglue / "jsquad" / "valid-v1.3.json").read_text(encoding="utf-8"))
        for article in squad["data"]:
            for para in article["paragraphs"]:
                body.extend(s + "。" for s in re.split("。", para["context"].split(" [SEP] ")[-1]) if len(s) > 5)
                questions.extend(q["question"] for q in para["qas"])
        for line in (jglue / "jcommonsenseqa" / "train-v1.3.json").read_text(encoding="utf-8").splitlines():
            questions.append(json.loads(line)["question"])
        return questions, body, f"JGLUE v1.3 ({jglue})"
    from jsweep.models.tiny import corpus

    texts = [t for t in corpus() if len(t) > 5]
    return [t for t in texts if len(t) < 80], texts, "shipped fixtures"


def build_records(n: int, jglue: Path | None, seed: int = 0):
    """n instruction records with dolly-ja's length mix, as jsweep Examples."""
    from jsweep.data.records import Example, Message

    questions, body, source = sentences(jglue)
    rng = random.Random(seed)
    out, lengths = [], []
    for i in range(n):
        total = int(min(max(rng.lognormvariate(math.log(MEDIAN_CHARS), SIGMA), 12), 12000))
        q = rng.choice(questions)[: max(6, total // 3)]
        context = ""
        if total > 400 and rng.random() < 0.3:  # some records carry an input passage, like dolly's context
            context = "".join(rng.choice(body) for _ in range(8))[: (total - len(q)) // 2]
        answer, need = "", max(total - len(q) - len(context), 2)
        while len(answer) < need:
            answer += rng.choice(body)
        answer = answer[:need]
        out.append(
            Example(id=f"mix-{i:06d}", messages=[Message("user", q), Message("assistant", answer)], input=context)
        )
        lengths.append(len(q) + len(context) + len(answer))
    lengths.sort()
    pct = {p: lengths[int(p / 100 * (n - 1))] for p in (10, 50, 90)}
    return out, {
        "source": source,
        "records": n,
        "chars_p10": pct[10],
        "chars_p50": pct[50],
        "chars_p90": pct[90],
        "chars_mean": sum(lengths) / n,
    }


def spec_for(args, method: str, overrides: list[str]):
    from jsweep.compose import compose_spec

    return compose_spec(
        [
            f"model={args.model}",
            "model.init=random",
            f"method={method}",
            f"train.max_length={args.seq}",
            f"train.micro_batch_size={args.micro}",
            "train.max_steps=100000",
            "train.eval_fraction=0",
            "train.checkpoint_steps=-1",
            "train.save_model=false",
            "train.logging_steps=20",
            "eval=[]",
            *overrides,
            *args.extra,
        ]
    )


GEMM = ("gemm", "cutlass", "xmma", "nvjet", "cublas", "wgmma", "sm90")


def kernel_breakdown(prof, steps: int) -> dict:
    """GPU time per step by kind of kernel (matrix products, attention, Triton, the rest) and the top kernels."""
    kernels = {}
    for evt in prof.key_averages():
        t = getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0)
        if t and str(getattr(evt, "device_type", "")).endswith("CUDA"):
            kernels[evt.key] = kernels.get(evt.key, 0) + t / 1e3 / steps  # ms per step
    kinds = {"matmul": 0.0, "attention": 0.0, "triton": 0.0, "other": 0.0}
    for name, ms in kernels.items():
        low = name.lower()
        kind = (
            "attention"
            if "flash" in low or "fmha" in low or "attention" in low
            else "matmul"
            if any(g in low for g in GEMM)
            else "triton"
            if "triton" in low
            else "other"
        )
        kinds[kind] += ms
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:15]
    return {
        "gpu_ms_per_step": sum(kernels.values()),
        "ms_per_step_by_kind": kinds,
        "top_kernels_ms_per_step": [[n[:120], ms] for n, ms in top],
    }


def make_clock(counter, warmup: int, seconds: float, profile: bool = False):
    import torch
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """Times the steps after ``warmup`` for ``seconds``, counting the real and padded tokens collated."""

        def __init__(self):
            self.t0 = self.result = self.prof = self.profile = None
            self.wall = 0.0

        def mark(self, state):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter(), counter.real, counter.slots, state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                self.t0 = self.mark(state)
            elif self.t0 is not None and self.result is None:
                now = self.mark(state)
                if now[0] - self.t0[0] >= seconds:
                    self.result = [b - a for a, b in zip(self.t0, now)]
                    control.should_training_stop = not profile
                    if profile:  # then profile 3 more steps
                        acts = [torch.profiler.ProfilerActivity.CPU]
                        if torch.cuda.is_available():
                            acts.append(torch.profiler.ProfilerActivity.CUDA)
                        self.prof = torch.profiler.profile(activities=acts)
                        self.prof.__enter__()
                        self.pstart = (state.global_step, time.perf_counter())
            elif self.prof is not None and state.global_step - self.pstart[0] >= 3:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                wall = (time.perf_counter() - self.pstart[1]) / 3 * 1e3
                self.prof.__exit__(None, None, None)
                self.profile = {"wall_ms_per_step": wall, **kernel_breakdown(self.prof, 3)}
                self.prof = None
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            if self.t0 is not None and self.result is None:
                self.result = [b - a for a, b in zip(self.t0, self.mark(state))]

    return Clock()


def run_config(name: str, args, examples, report: dict) -> dict:
    import torch

    from jsweep.distributed import peak_tflops
    from jsweep.job.context import CellContext
    from jsweep.job.sft import PaddingCounter, build_sft_trainer, lora_config, render_pairs
    from jsweep.models.load import load_model, load_tokenizer
    from jsweep.tracking import NullTracker

    runner, method, overrides = CONFIGS[name]
    spec = spec_for(args, method, overrides)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke run of this script, no figures
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    class Params(NullTracker):
        def __init__(self):
            self.params = {}

        def log_params(self, params, *a, **k):
            self.params.update(params)

    tracker = Params()
    ctx = CellContext(spec, Path(tempfile.mkdtemp(prefix=f"cell-{name}-")), tracker, device)
    ctx.train = examples
    tokenizer = load_tokenizer(spec.model, spec.seed)
    model = load_model(spec.model, device=device, seed=spec.seed)
    n_params = sum(p.numel() for p in model.parameters())
    rows = render_pairs(examples, spec, tokenizer)
    t_setup = time.perf_counter()
    if runner == "jsweep":
        trainer = build_sft_trainer(ctx, model, tokenizer, rows, [])
    else:  # plain TRL as a user writes it: SFTConfig defaults (padded batches, sdpa), the same batch and length
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        targs = SFTConfig(
            output_dir=str(ctx.cell_dir / "out"),
            per_device_train_batch_size=args.micro,
            max_length=args.seq,
            learning_rate=spec.lr,
            max_steps=100000,
            bf16=device == "cuda",
            use_cpu=device == "cpu",
            report_to="none",
            logging_steps=20,
            save_strategy="no",
            disable_tqdm=True,
        )
        trainer = SFTTrainer(
            model=model,
            args=targs,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(spec) if spec.method.peft == "lora" else None,
        )
        trainer.data_collator = PaddingCounter(trainer.data_collator)
        tracker.params.update({"train.attention_impl": model.config._attn_implementation})
    setup_s = time.perf_counter() - t_setup
    clock = make_clock(trainer.data_collator, args.warmup, args.seconds, profile=name in args.profile.split(","))
    trainer.add_callback(clock)
    trainer.train()
    seconds, real, slots, steps = clock.result
    tps = real / seconds
    flops_per_token = (4 if spec.method.peft == "lora" else 6) * n_params
    peak = (peak_tflops(torch.cuda.get_device_name(0)) if device == "cuda" else None) or float("nan")
    row = {
        "runner": runner,
        "method": method,
        "overrides": overrides,
        "params": n_params,
        "attention": tracker.params.get("train.attention_impl"),
        "liger": tracker.params.get("train.liger_enabled"),
        "packing": spec.train.packing if runner == "jsweep" else False,
        "micro_batch_size": spec.train.micro_batch_size,
        "timed_steps": steps,
        "timed_seconds": seconds,
        "tokens": real,
        "tokens_per_second": tps,
        "padding_fraction": 1 - real / slots if slots else None,
        "tokens_per_step": real / steps if steps else None,
        "flops_per_token": flops_per_token,
        "mfu": flops_per_token * tps / (peak * 1e12),
        "mfu_6n": 6 * n_params * tps / (peak * 1e12),
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "setup_seconds": setup_s,
        "profile": clock.profile,
        "final_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
    }
    del trainer, model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def varlen_check() -> dict:
    """The varlen kernel against a float64 block-diagonal reference (forward and gradients), and its speed
    against sdpa with a dense block-diagonal mask, on one packed row of 16k tokens (16 heads of 128)."""
    import torch
    import torch.nn.functional as F

    from jsweep.job.attention import _segments_sdpa, packed_attention, varlen_kernel

    if varlen_kernel() is None or not torch.cuda.is_available():
        return {"available": False}
    g = torch.Generator(device="cuda").manual_seed(0)
    lengths = [int(x) for x in torch.randint(8, 900, (40,), generator=g, device="cuda").tolist()]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    T, H, D = int(cu[-1]), 16, 128
    q, k, v = (
        torch.randn(T, H, D, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_() for _ in range(3)
    )
    out = packed_attention(q, k, v, cu, max(lengths), scaling=D**-0.5)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    got = [out.detach().double(), q.grad.double(), k.grad.double(), v.grad.double()]
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = _segments_sdpa(q64, k64, v64, cu.tolist(), D**-0.5, 0.0)
    ref.backward(grad_out.double())
    refs = [ref.detach(), q64.grad, k64.grad, v64.grad]
    errors = {n: float((a - b).norm() / b.norm()) for n, a, b in zip(("out", "dq", "dk", "dv"), got, refs)}

    def timed(fn, reps=10):
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / reps * 1e3

    n = 16384
    lens = [int(x) for x in torch.randint(8, 900, (200,), generator=g, device="cuda").tolist()]
    cu16 = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    cu16 = cu16[cu16 < n]
    cu16 = torch.cat([cu16, torch.tensor([n], dtype=torch.int32, device="cuda")])
    qq, kk, vv = (
        torch.randn(n, H, D, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_() for _ in range(3)
    )
    seg = torch.repeat_interleave(torch.arange(len(cu16) - 1, device="cuda"), cu16.diff())
    mask = (seg[:, None] == seg[None, :]) & torch.ones(n, n, dtype=torch.bool, device="cuda").tril()
    maxlen = int(cu16.diff().max())

    def kernel():
        packed_attention(qq, kk, vv, cu16, maxlen, scaling=D**-0.5).sum().backward()

    def dense():
        F.scaled_dot_product_attention(
            qq.transpose(0, 1)[None], kk.transpose(0, 1)[None], vv.transpose(0, 1)[None], attn_mask=mask
        ).sum().backward()

    return {
        "available": True,
        "relative_error_vs_float64": errors,
        "tokens": n,
        "fwd_bwd_ms_varlen": timed(kernel),
        "fwd_bwd_ms_sdpa_dense_mask": timed(dense),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jglue", type=Path, help="JGLUE v1.3 directory (jsquad/valid, jcommonsenseqa/train)")
    parser.add_argument("--configs", default=",".join(list(CONFIGS)[:6]), help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--model", default="llm-jp-3-1.8b")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per configuration")
    parser.add_argument("--profile", default="", help="comma list of configurations to profile for 3 more steps")
    parser.add_argument("--extra", nargs="*", default=[], help="more jsweep overrides for every configuration")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration in this process
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cell_throughput.json")
    args = parser.parse_args()
    import torch

    examples, data = build_records(args.records, args.jglue)
    if args.one:
        try:
            row = run_config(args.one, args, examples, {})
        except Exception as exc:  # reported to the parent process
            traceback.print_exc()
            row = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        print("ROW " + json.dumps(row), flush=True)
        return
    report = {
        "setup": {k: str(v) for k, v in vars(args).items() if k != "out"},
        "data": data,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "configs": {},
    }
    import transformers
    import trl

    report.update({"transformers": transformers.__version__, "trl": trl.__version__})
    print(f"data: {data}", flush=True)
    try:
        report["varlen_check"] = varlen_check()
    except Exception as exc:  # the benchmark carries on and records why
        report["varlen_check"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        traceback.print_exc()
    print(f"varlen check: {report['varlen_check']}", flush=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the configurations run in their own processes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.configs.split(","):
        print(f"=== {name}", flush=True)
        report["configs"][name] = isolated(name, args)
        print(f"{name}: {report['configs'][name]}", flush=True)
        ratios(report)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    table(report)


def isolated(name: str, args) -> dict:
    """Run one configuration in its own process: Liger patches transformers' Llama functions for the whole
    process, so a configuration run after one with Liger would silently keep its kernels."""
    cmd = [
        sys.executable,
        __file__,
        "--one",
        name,
        "--model",
        args.model,
        "--seq",
        str(args.seq),
        "--micro",
        str(args.micro),
        "--records",
        str(args.records),
        "--warmup",
        str(args.warmup),
        "--seconds",
        str(args.seconds),
        "--profile",
        args.profile,
        "--out",
        str(args.out),
    ]
    if args.jglue:
        cmd += ["--jglue", str(args.jglue)]
    if args.extra:
        cmd += ["--extra", *args.extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    row = None
    for line in proc.stdout:
        if line.startswith("ROW "):
            row = json.loads(line[4:])
        else:
            print(line, end="", flush=True)
    proc.wait()
    return row if row is not None else {"error": f"the configuration's process exited with {proc.returncode}"}


def ratios(report: dict) -> None:
    for row in report["configs"].values():
        base = report["configs"].get(BASELINE.get(row.get("method"), ""), {})
        if "tokens_per_second" in row and base.get("tokens_per_second"):
            row["x_vs_trl_padded"] = row["tokens_per_second"] / base["tokens_per_second"]


def table(report: dict) -> None:
    print(f"\n{report['gpu']}, data {report['data']}")
    print(f"{'config':22} {'attention':14} {'tokens/s':>9} {'MFU':>6} {'pad':>5} {'peak GB':>8} {'x TRL':>6}")
    for name, r in report["configs"].items():
        if "error" in r:
            print(f"{name:22} ERROR {r['error'][:100]}")
            continue
        print(
            f"{name:22} {r['attention']!s:14} {r['tokens_per_second']:9.0f} {r['mfu']:6.1%} "
            f"{r['padding_fraction']:5.2f} {r['peak_memory_gb'] or 0:8.1f} {r.get('x_vs_trl_padded', float('nan')):6.2f}"
        )


if __name__ == "__main__":
    main()
