"""Free-form answers of a cell's model to a list of questions, with explicit generation parameters.

Shared by the judged (``elyza_tasks_100``), human-graded (``human_eval``) and qualitative
(``samples``) evaluators. Each question is put to the model as one user turn in the cell's own
prompt format (``prompt_format: cell``, what it was tuned on) or as the bare text (``raw``).

Decoding: greedy (``do_sample: false``, batched with left padding) or sampling with
temperature / top_p / top_k; ``repetition_penalty`` applies to both. When sampling, each
question is generated alone after ``torch.manual_seed(seed + i)`` (``i``: its position in the
list), so a run is reproducible and an answer does not depend on batching.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GEN_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "seed")


def gen_params(options: dict[str, Any]) -> dict[str, Any]:
    """The generation parameters of an evaluator's options (logged with the answers)."""
    return {k: options[k] for k in GEN_KEYS if k in options}


def check_gen(options: dict[str, Any], prefix: str) -> list[str]:
    problems = []
    if int(options.get("max_new_tokens", 1)) <= 0:
        problems.append(f"eval.{prefix}.max_new_tokens must be positive")
    if options.get("do_sample"):
        if not float(options.get("temperature", 1.0)) > 0:
            problems.append(f"eval.{prefix}.temperature must be > 0 when sampling")
        if not 0 < float(options.get("top_p", 1.0)) <= 1:
            problems.append(f"eval.{prefix}.top_p must be in (0, 1]")
    if not float(options.get("repetition_penalty", 1.0)) > 0:
        problems.append(f"eval.{prefix}.repetition_penalty must be > 0")
    if options.get("prompt_format", "cell") not in ("cell", "raw"):
        problems.append(f"eval.{prefix}.prompt_format must be cell or raw, got {options.get('prompt_format')!r}")
    return problems


def model_prompts(questions: Sequence[str], ctx: Any, tokenizer: Any, prompt_format: str = "cell") -> list[str]:
    """Each question as the model sees it: one user turn in the cell's prompt format, or raw."""
    if prompt_format == "raw":
        return list(questions)
    from jsweep import registries
    from jsweep.data.records import Message

    fmt = registries.PROMPT_FORMATS.get(ctx.spec.prompt.format)
    return [fmt.prompt([Message("user", q)], tokenizer=tokenizer, system=ctx.spec.prompt.system) for q in questions]


def generate_answers(
    model: Any, tokenizer: Any, prompts: Sequence[str], options: dict[str, Any], label: str = "answers"
) -> list[str]:
    """Completions of ``prompts`` (prompt text not included), in order."""
    import torch

    from jsweep.eval.generate import Progress

    if not prompts:
        return []
    from jsweep.eval.vllm_engine import active

    if (engine := active(model)) is not None:
        return _vllm_answers(engine, tokenizer, prompts, options, label)
    device = next(model.parameters()).device
    sample = bool(options.get("do_sample", False))
    kwargs: dict[str, Any] = {
        "max_new_tokens": int(options.get("max_new_tokens", 256)),
        "repetition_penalty": float(options.get("repetition_penalty", 1.0)),
        "num_beams": 1,
        "do_sample": sample,
    }
    if sample:
        kwargs.update(
            temperature=float(options.get("temperature", 1.0)),
            top_p=float(options.get("top_p", 1.0)),
            top_k=int(options.get("top_k", 0) or 0),
        )
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch_size = 1 if sample else max(1, int(options.get("batch_size", 8)))
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i])) if not sample else list(range(len(prompts)))
    out: list[str] = [""] * len(prompts)
    progress = Progress(label, len(prompts))
    seed = int(options.get("seed", 0) or 0)
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            enc = tokenizer([prompts[j] for j in batch], return_tensors="pt", padding=True).to(device)
            if sample:
                torch.manual_seed(seed + batch[0])
            with torch.inference_mode():
                gen = model.generate(
                    **enc, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **kwargs
                )
            for j, ids in zip(batch, gen[:, enc["input_ids"].shape[1] :]):
                out[j] = tokenizer.decode(ids, skip_special_tokens=True).strip()
            progress.update(len(batch))
    finally:
        tokenizer.padding_side = old_side
    return out


def _vllm_answers(
    engine: Any, tokenizer: Any, prompts: Sequence[str], options: dict[str, Any], label: str
) -> list[str]:
    """generate_answers through vLLM: each prompt's own token ids (what the padded batch holds unpadded)."""
    from vllm import SamplingParams

    ids = [list(tokenizer(p).input_ids) for p in prompts]
    common: dict[str, Any] = {
        "n": 1,
        "max_tokens": int(options.get("max_new_tokens", 256)),
        "repetition_penalty": float(options.get("repetition_penalty", 1.0)),
    }
    if options.get("do_sample", False):
        seed = int(options.get("seed", 0) or 0)
        params = [
            SamplingParams(
                **common,
                temperature=float(options.get("temperature", 1.0)),
                top_p=float(options.get("top_p", 1.0)),
                top_k=int(options.get("top_k", 0) or 0),
                seed=seed + i,
            )
            for i in range(len(prompts))
        ]
    else:
        params = [SamplingParams(**common, temperature=0.0) for _ in prompts]
    completions = engine.complete(ids, params, label)
    return [tokenizer.decode(c, skip_special_tokens=True).strip() for c in completions]


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write JSON lines atomically (jsweep.files.write_text: a temporary file renamed over the target)."""
    from jsweep.files import write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
