"""The generation engine every evaluator uses: batched greedy decoding, batches sized by memory.

- Prompts are tokenised once. Requests are grouped by ``max_new_tokens`` rounded up to a power of
  two (a batch decodes to its largest budget and each row keeps its own first ``max_new_tokens``
  tokens: greedy tokens do not depend on how far decoding goes on; per-document budgets, as JSQuAD's,
  would otherwise make one small batch per budget); on a GPU the few rows of the largest buckets
  decode together (``decode_groups``), and each group is sorted by prompt
  length (longest first, so an out-of-memory error shows up in the first batch rather than the
  last), generated in batches, and returned in the original order.
- ``batch_size="auto"`` (the default) sizes each batch in tokens: on a GPU, what the free memory
  holds of the KV cache and activations of ``rows x (prompt + new tokens)``; on a CPU, up to 16 rows.
  An out-of-memory error halves the batch and retries it (and the rows limit stays halved), so
  no one has to tune a batch size. An integer fixes the rows per batch (OOM still backs off).
- Rows of a batch that share a long token prefix (the instruction and few-shot examples of one
  task) have that prefix computed once: its KV cache is built for one row, repeated across the
  batch, and each row's own suffix follows it (``share_prefix``). Greedy decoding gives the same
  tokens either way, up to the numerics of batched kernels.
- Progress goes to the cell log as ``[jsweep]`` lines (done/total, rate, time left).
- With ``eval.backend=vllm`` the same token ids go to vLLM instead (jsweep.eval.vllm_engine), and its
  completions are decoded here the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MIN_SHARED_PREFIX = 32  # tokens: shorter shared prefixes are not worth a separate forward pass
CPU_MAX_ROWS = 16
GPU_MAX_ROWS = 256
MEMORY_FRACTION = 0.7  # of the free GPU memory a batch may plan to use
# rows below which one decoding step of a 1-2B model on an H100/H200 costs about the same: the step is
# bound by kernel launches and Python, not by the rows (decode_groups merges small long-budget groups)
DECODE_OVERHEAD_ROWS = 64
CUDNN_DECODING = False  # True = let PyTorch pick cuDNN attention while decoding (see attention_backends)


@dataclass
class Request:
    prompt: str
    max_new_tokens: int


class Progress:
    """Periodic one-line progress reports (every ``every`` seconds and at the end)."""

    def __init__(self, label: str, total: int, every: float = 10.0):
        from jsweep.job.context import say

        self.say, self.label, self.total, self.every = say, label, total, every
        self.done, self.t0, self.last = 0, time.monotonic(), time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0
            self.say(f"{self.label}: {self.done}/{self.total} ({rate:.1f}/s, ~{eta:.0f}s left)")


@contextmanager
def tokenizer_threads() -> Iterator[None]:
    """Fast tokenizers encode a batch on all cores unless ``TOKENIZERS_PARALLELISM`` is off (jsweep's GPU
    scripts turn it off against the warning about forking after use). Within this block it is on; the
    tokenizers library itself turns it off in a forked child once it has been used."""
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved


def encode_batch(tokenizer: Any, texts: Sequence[str], **kwargs: Any) -> list[list[int]]:
    """``[tokenizer(t, **kwargs).input_ids for t in texts]``, in batched calls on all cores for a fast tokenizer."""
    if not getattr(tokenizer, "is_fast", False):
        return [list(tokenizer(t, **kwargs).input_ids) for t in texts]
    out: list[list[int]] = []
    with tokenizer_threads():
        for i in range(0, len(texts), 4096):
            out.extend(list(x) for x in tokenizer(list(texts[i : i + 4096]), **kwargs)["input_ids"])
    return out


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class BatchPlanner:
    """How many rows of a given length go in one batch: a fixed count, or what memory holds."""

    def __init__(self, model: Any, batch_size: int | str = "auto"):
        import torch

        self.device = next(model.parameters()).device
        self.fixed = None if batch_size in (None, "auto") else int(batch_size)
        if self.fixed is not None and self.fixed < 1:
            raise ValueError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
        self.max_rows = self.fixed or (GPU_MAX_ROWS if self.device.type == "cuda" else CPU_MAX_ROWS)
        self.token_budget: int | None = None
        if self.fixed is None and self.device.type == "cuda":
            cfg = model.config
            cfg = getattr(cfg, "get_text_config", lambda: cfg)()
            layers = int(getattr(cfg, "num_hidden_layers", 24))
            heads = int(getattr(cfg, "num_attention_heads", 16))
            kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
            hidden = int(getattr(cfg, "hidden_size", 2048))
            head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
            inter = int(getattr(cfg, "intermediate_size", 4 * hidden))
            elem = next(model.parameters()).element_size()
            per_token = 2 * layers * kv_heads * head_dim * elem + 4 * (hidden + inter) * elem
            torch.cuda.empty_cache()  # blocks the allocator caches from earlier work (the harness's logits) count as free
            free, _ = torch.cuda.mem_get_info(self.device)
            self.token_budget = max(1, int(MEMORY_FRACTION * free / per_token))

    def rows(self, tokens_per_row: int) -> int:
        if self.token_budget is None:
            return self.max_rows
        return max(1, min(self.max_rows, self.token_budget // max(tokens_per_row, 1)))

    def shrink(self, rows: int) -> int:
        """After an out-of-memory error with ``rows`` rows: the new rows limit (0 = give up)."""
        self.max_rows = rows // 2
        if self.token_budget is not None:
            self.token_budget //= 2
        return self.max_rows


@contextmanager
def attention_backends(device: Any) -> Iterator[None]:
    """On a GPU, scaled-dot-product attention without PyTorch's cuDNN backend while decoding.

    PyTorch prefers cuDNN's attention on Hopper GPUs, and cuDNN builds an execution plan for every new
    shape on the CPU (about 1.2 ms a call, measured on an H200). A dynamic KV cache grows by one
    position at every decoding step, so every step of every layer meets a new shape: a decoding step
    of llm-jp-3-1.8b took 70-100 ms at any batch size, against 22 ms when the same shapes came round
    again (benchmarks/decode_step.py). Flash and memory-efficient attention plan nothing per shape.
    CPUs are left as they are (``CUDNN_DECODING`` = True restores PyTorch's own choice)."""
    if device.type != "cuda" or CUDNN_DECODING:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        yield


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own."""
    if len(rows) < 2:
        return 0
    first, n = rows[0], min(len(r) for r in rows) - 1
    k = 0
    while k < n and all(r[k] == first[k] for r in rows):
        k += 1
    return k if k >= MIN_SHARED_PREFIX else 0


def _bucket(max_new: int) -> int:
    return 1 << max(0, int(max_new) - 1).bit_length()


def decode_groups(budgets: Sequence[int], overhead_rows: int) -> dict[int, int]:
    """Power-of-two budget bucket -> the bucket whose batches its rows decode in.

    A decoding step of a batch smaller than ``overhead_rows`` rows costs about as much as one of that
    many rows (on a GPU the step is launch- and overhead-bound), so a step costs
    ``max(1, rows / overhead_rows)``. From the largest bucket down, the next bucket joins the current
    group when that lowers the group's steps x cost: the long tail of a few rows with large budgets
    (JSQuAD's longest answers) then decodes in one batch instead of one small batch per bucket.
    Each row still keeps only its own first tokens. ``overhead_rows=1`` (a CPU, compute-bound at
    any size) never merges."""
    counts: dict[int, int] = {}
    longest: dict[int, int] = {}  # per bucket, its largest budget: the steps its rows take (not the bucket)
    for budget in budgets:
        b = _bucket(budget)
        counts[b] = counts.get(b, 0) + 1
        longest[b] = max(longest.get(b, 0), int(budget))

    def cost(steps: int, rows: int) -> float:
        return steps * max(1.0, rows / max(overhead_rows, 1))

    groups: dict[int, int] = {}
    top = rows = steps = 0
    for b in sorted(counts, reverse=True):
        if top and cost(steps, rows + counts[b]) < cost(steps, rows) + cost(longest[b], counts[b]):
            groups[b] = top
            rows += counts[b]
        else:
            groups[b], top, rows, steps = b, b, counts[b], longest[b]
    return groups


def generate_batch(
    model: Any,
    tokenizer: Any,
    rows: list[list[int]],
    max_new: int,
    share_prefix: bool,
    extra: dict[str, Any] | None = None,
    keep: Sequence[int] | None = None,
) -> list[str]:
    """Greedy completions of token-id ``rows`` (one batch): [prefix][left padding][own suffix]."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    shared = shared_prefix_length(rows) if share_prefix else 0
    width = max(len(r) - shared for r in rows)
    input_ids = torch.full((len(rows), shared + width), pad, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for b, r in enumerate(rows):
        own = r[shared:]
        input_ids[b, :shared] = torch.tensor(r[:shared], dtype=torch.long)
        input_ids[b, shared + width - len(own) :] = torch.tensor(own, dtype=torch.long)
        mask[b, :shared] = 1
        mask[b, shared + width - len(own) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    kwargs: dict[str, Any] = dict(extra or {})
    with torch.inference_mode(), attention_backends(device):
        if shared:
            from transformers import DynamicCache

            cache = DynamicCache(config=model.config)
            model(
                input_ids=input_ids[:1, :shared],
                attention_mask=mask[:1, :shared],
                past_key_values=cache,
                use_cache=True,
            )
            cache.batch_repeat_interleave(len(rows))
            kwargs["past_key_values"] = cache
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            temperature=None,
            top_p=None,
            top_k=None,
            **kwargs,
        )
    new = out[:, input_ids.shape[1] :]
    return [tokenizer.decode(ids[: keep[b]] if keep else ids, skip_special_tokens=True) for b, ids in enumerate(new)]


def generate(
    model: Any,
    tokenizer: Any,
    requests: Sequence[Request],
    *,
    batch_size: int | str = "auto",
    label: str = "generate",
    add_special_tokens: bool = True,
    share_prefix: bool = True,
    generate_kwargs: dict[str, Any] | None = None,
    use_backend: bool = True,
    overhead_rows: int | None = None,
) -> list[str]:
    """Greedy completions for ``requests`` (prompt text not included), in request order.

    ``overhead_rows`` is the batch size below which a decoding step costs the same (decode_groups);
    None = DECODE_OVERHEAD_ROWS on a GPU, 1 (no merging) on a CPU.
    ``generate_kwargs`` go to ``model.generate`` as they are (e.g. ``cache_implementation="static"``).
    Under ``eval.backend=vllm`` the requests go to vLLM (jsweep.eval.vllm_engine) unless ``use_backend`` is
    False: a caller that needs the transformers model around the call (the JGLUE harness) keeps it.
    """
    import torch

    if not requests:
        return []
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = encode_batch(tokenizer, [r.prompt for r in requests], add_special_tokens=add_special_tokens)
    from jsweep.eval.vllm_engine import active

    if use_backend and (engine := active(model)) is not None:  # eval.backend=vllm: the same ids, decoded alike
        completions = engine.greedy(ids, [r.max_new_tokens for r in requests], label)
        return [tokenizer.decode(c, skip_special_tokens=True) for c in completions]
    planner = BatchPlanner(model, batch_size)
    if overhead_rows is None:
        overhead_rows = DECODE_OVERHEAD_ROWS if planner.device.type == "cuda" else 1
    groups = decode_groups([r.max_new_tokens for r in requests], overhead_rows)
    group = [groups[_bucket(r.max_new_tokens)] for r in requests]
    order = sorted(range(len(requests)), key=lambda i: (group[i], -len(ids[i])))
    outputs: list[str] = [""] * len(requests)
    progress = Progress(label, len(requests))
    i = 0
    while i < len(order):
        bucket = group[order[i]]
        rows = planner.rows(len(ids[order[i]]) + bucket)  # the first row of a sorted run is the longest
        batch = [j for j in order[i : i + rows] if group[j] == bucket]
        budgets = [requests[j].max_new_tokens for j in batch]
        max_new = max(budgets)
        try:
            texts = generate_batch(
                model,
                tokenizer,
                [ids[j] for j in batch],
                max_new,
                share_prefix,
                generate_kwargs,
                keep=None if min(budgets) == max_new else budgets,
            )
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not _is_oom(exc) or len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            progress.say(f"{label}: out of memory with {len(batch)} rows; retrying with {planner.shrink(len(batch))}")
            continue
        for j, text in zip(batch, texts):
            outputs[j] = text
        i += len(batch)
        progress.update(len(batch))
    return outputs
