"""Loglikelihood requests with each shared context computed once (``eval.jglue.loglikelihood: shared``).

The harness (lm-eval 0.4.13 ``HFLM``) scores a multiple-choice document as one request per choice:
JCommonsenseQA's 5 choices and JNLI's 3 labels each run the document's whole few-shot context
through the model again, in rows of ``context + continuation``, and take the log-softmax over the
vocabulary at every position of every row. It also tokenizes every request on its own, twice (the
context, then context + continuation).

Here the requests that share a context become one row::

    [context | cont_1[:-1] | cont_2[:-1] | ... | cont_k[:-1]]

Each continuation's tokens take the positions they have in the harness's row (``len(context)``
onwards, so position ids restart for each continuation), and an attention mask lets each
continuation see the context and itself only. The last context position predicts every
continuation's first token; a continuation's own positions predict the rest. So every scored
token sees exactly the tokens it sees in the harness's row, at the same positions: the same
loglikelihoods up to the order of floating-point sums (equal within fp32 tolerance on CPU,
``tests/unit/eval/jglue/test_jglue.py``), the same greedy flags. Only the scored positions are
projected onto the vocabulary. Rows are batched by padded width (longest first), the count from
free GPU memory with ``batch_size: auto``, halved on out-of-memory; on CPU or with an integer batch
size, that many rows (documents) per batch.

Tokenization: the unique strings are encoded in batched fast-tokenizer calls (on all cores), each
context once, with the arguments the harness's ``tok_encode`` would use; the token ids are the harness's
(``_encode_pair``: the continuation is the tail of ``encode(context + continuation)`` after
``len(encode(context))``).

Requests the harness would truncate on the left (longer than the model's context), models whose
attention implementation takes no custom 4D mask (only ``sdpa`` and ``eager`` do), and seq2seq
models go to the harness's own path; so does everything, with one line in the cell log, if scoring
here fails (:mod:`jsweep.eval.jglue.lm`). Imports torch: use at scoring time only.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

MASK_IMPLEMENTATIONS = ("sdpa", "eager")
MEMORY_FRACTION = 0.5  # of the free GPU memory a batch may plan to use


def attention_implementation(model: Any) -> str | None:
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "get_text_config", lambda: cfg)()
    return getattr(cfg, "_attn_implementation", None)


def supported(lm: Any) -> bool:
    """Whether ``lm`` (an HFLM) can score with shared contexts: a causal model with sdpa or eager attention
    whose forward takes position ids."""
    return (
        getattr(lm, "backend", "causal") == "causal"
        and attention_implementation(lm.model) in MASK_IMPLEMENTATIONS
        and _takes(lm.model, "position_ids")
    )


# --------------------------------------------------------------------------- tokenization


def encode_pairs(lm: Any, pairs: Sequence[tuple[str, str]]) -> list[tuple[tuple[str, str], list[int], list[int]]]:
    """``[((context, continuation), context_enc, continuation_enc)]`` exactly as the harness's
    ``TemplateLM.loglikelihood`` builds them (lm-eval 0.4.13), with the unique strings encoded in batches."""
    from lm_eval.models.utils import _add_special_kwargs, has_bos_prefix

    from jsweep.eval.generate import tokenizer_threads

    tok = lm.tokenizer
    bos = tok.decode(lm.prefix_token_id)
    base = _add_special_kwargs(None, lm.add_bos_token)

    def kwargs(s: str) -> tuple[tuple[str, Any], ...]:  # tok_encode(s) with add_special_tokens=None
        k = dict(base)
        if has_bos_prefix(s, bos):
            k["add_special_tokens"] = False
        return tuple(sorted(k.items()))

    plan: list[tuple[str, str] | None] = []
    wanted: dict[str, tuple] = {}
    for context, continuation in pairs:
        if context == "":
            plan.append(None)  # the harness's prefix-token case, done as it does it below
            continue
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        pair = (context, context + continuation)
        plan.append(pair)
        for s in pair:
            if s not in wanted:
                wanted[s] = kwargs(s)
    ids: dict[str, list[int]] = {}
    groups: dict[tuple, list[str]] = {}
    for s, k in wanted.items():
        groups.setdefault(k, []).append(s)
    with tokenizer_threads():
        for k, strings in groups.items():
            if getattr(tok, "is_fast", False):
                for i in range(0, len(strings), 4096):
                    chunk = strings[i : i + 4096]
                    for s, enc in zip(chunk, tok(chunk, **dict(k))["input_ids"]):
                        ids[s] = list(enc)
            else:
                for s in strings:
                    ids[s] = tok.encode(s, **dict(k))
    out = []
    for (context, continuation), p in zip(pairs, plan):
        if p is None:
            cont = lm.tok_encode(continuation, add_special_tokens=False)
            ctx_enc, cont_enc = ([lm.prefix_token_id], cont) if lm.prefix_token_id != cont[0] else (cont[:1], cont[1:])
        else:
            ctx_enc = ids[p[0]]
            cont_enc = ids[p[1]][len(ctx_enc) :]
        out.append(((context, continuation), ctx_enc, cont_enc))
    return out


# --------------------------------------------------------------------------- scoring


class _Doc:
    """One row: a context and the continuations (request indices) that share it."""

    __slots__ = ("conts", "ctx", "index", "width")

    def __init__(self, ctx: tuple[int, ...]):
        self.ctx = ctx
        self.conts: list[list[int]] = []
        self.index: list[int] = []
        self.width = len(ctx)

    def add(self, i: int, cont: list[int]) -> None:
        self.conts.append(cont)
        self.index.append(i)
        self.width += len(cont) - 1


def group(requests: Sequence[tuple[Any, list[int], list[int]]]) -> list[_Doc]:
    """Requests grouped by their context tokens, longest row first (ties in first-seen order)."""
    docs: dict[tuple[int, ...], _Doc] = {}
    for i, (_, ctx, cont) in enumerate(requests):
        key = tuple(ctx)
        doc = docs.get(key)
        if doc is None:
            doc = docs[key] = _Doc(key)
        doc.add(i, list(cont))
    return sorted(docs.values(), key=lambda d: -d.width)


def model_sizes(model: Any) -> tuple[int, int, int, int, int]:
    """(bytes per weight element, vocabulary, hidden width, MLP width, attention heads) of a model,
    from its (text) config, with defaults where a config lacks a key: what memory estimates need."""
    cfg = model.config
    cfg = getattr(cfg, "get_text_config", lambda: cfg)()
    hidden = int(getattr(cfg, "hidden_size", 2048))
    return (
        next(model.parameters()).element_size(),
        int(getattr(cfg, "vocab_size", 32000)),
        hidden,
        int(getattr(cfg, "intermediate_size", 4 * hidden)),
        int(getattr(cfg, "num_attention_heads", 16)),
    )


def row_bytes(model: Any, width: int, kept: int) -> int:
    """GPU memory one row of ``width`` tokens costs, ``kept`` of them projected onto the vocabulary:
    per token the hidden activations (as the generation engine counts them) and the attention mask
    (sdpa) or weights (eager), per kept position the logits and their log-softmax."""
    elem, vocab, hidden, inter, heads = model_sizes(model)
    attn = width * (1 + elem) if attention_implementation(model) == "sdpa" else heads * width * elem * 2
    return width * (4 * (hidden + inter) * elem + attn) + kept * 3 * vocab * 4


def memory_budget(model: Any) -> int:
    """Bytes a batch may plan to use: half the free GPU memory (the allocator's cache freed first)."""
    import torch

    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(next(model.parameters()).device)
    return int(MEMORY_FRACTION * free)


def _batch_tensors(docs: Sequence[_Doc], pad_id: int, device: Any):
    """Input ids, position ids and segment ids (-1 pad, 0 context, i+1 continuation i) of ``docs``,
    contexts right-aligned at column C so that every row's scored positions are columns C-1 onward."""
    import torch

    c = max(len(d.ctx) for d in docs)
    tail = max(d.width - len(d.ctx) for d in docs)
    width = -(-(c + tail) // 8) * 8  # a multiple of 8: the alignment fused attention kernels want of a mask
    ids = torch.full((len(docs), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(docs), width), dtype=torch.long)
    seg = torch.full((len(docs), width), -1, dtype=torch.long)
    for r, d in enumerate(docs):
        n = len(d.ctx)
        ids[r, c - n : c] = torch.tensor(d.ctx)
        pos[r, c - n : c] = torch.arange(n)
        seg[r, c - n : c] = 0
        col = c
        for i, cont in enumerate(d.conts):
            m = len(cont) - 1
            if m:
                ids[r, col : col + m] = torch.tensor(cont[:-1])
                pos[r, col : col + m] = torch.arange(n, n + m)
                seg[r, col : col + m] = i + 1
            col += m
    return ids.to(device), pos.to(device), seg.to(device), c


def attention_mask(seg: Any, dtype: Any, implementation: str | None):
    """[B, 1, L, L]: causal; the context sees itself, each continuation the context and itself; a
    padding position only itself (so no row is all masked)."""
    import torch

    width = seg.shape[1]
    q, k = seg[:, :, None], seg[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool, device=seg.device).tril()
    allowed = causal & (((k == 0) & (q >= 0)) | ((k == q) & (q > 0)))
    allowed |= torch.eye(width, dtype=torch.bool, device=seg.device)
    allowed = allowed[:, None]
    if implementation == "sdpa":
        return allowed
    zero = torch.zeros((), dtype=dtype, device=seg.device)
    return torch.where(allowed, zero, torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=seg.device))


def _takes(model: Any, argument: str) -> bool:
    """Whether the forward of ``model`` (or of the model a PEFT wrapper holds) takes ``argument``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return argument in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def score_batch(lm: Any, docs: Sequence[_Doc], keep_arg: bool) -> list[list[tuple[float, bool]]]:
    """One forward pass over a batch of shared-context rows: per document, per choice, the summed
    log-probability of its tokens and whether greedy decoding would produce them."""
    import torch
    import torch.nn.functional as F

    model = lm.model
    ids, pos, seg, c = _batch_tensors(docs, _pad_id(lm), lm.device)
    dtype = next(model.parameters()).dtype
    if lm.mixed_precision_dtype is not None:
        dtype = lm.mixed_precision_dtype
    mask = attention_mask(seg, dtype, attention_implementation(model))
    kept = torch.arange(c - 1, ids.shape[1], device=ids.device)
    with (
        torch.no_grad(),
        torch.autocast(
            device_type=lm.device.type, dtype=lm.mixed_precision_dtype, enabled=lm.mixed_precision_dtype is not None
        ),
    ):
        extra = {"logits_to_keep": kept} if keep_arg else {}
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, **extra).logits
    if not keep_arg:
        logits = logits[:, c - 1 :]
    logp = F.log_softmax(logits, dim=-1, dtype=lm.softmax_dtype)  # as the harness takes it
    # every scored token of the batch at once: (row, kept column, target token, continuation number)
    rows, cols, targets, owner = [], [], [], []
    k = 0
    for r, d in enumerate(docs):
        col = 1  # kept column of a continuation's second token (column 0 predicts every first token)
        for cont in d.conts:
            m = len(cont) - 1
            rows += [r] * (m + 1)
            cols += [0, *range(col, col + m)]
            targets += cont
            owner += [k] * (m + 1)
            col += m
            k += 1
    dev = ids.device
    rows_t, cols_t = torch.tensor(rows, device=dev), torch.tensor(cols, device=dev)
    targets_t, owner_t = torch.tensor(targets, device=dev), torch.tensor(owner, device=dev)
    token_lp = logp[rows_t, cols_t, targets_t]
    wrong = (logp.argmax(dim=-1)[rows_t, cols_t] != targets_t).to(torch.int32)
    sums = torch.zeros(k, dtype=token_lp.dtype, device=dev).index_add_(0, owner_t, token_lp)
    misses = torch.zeros(k, dtype=torch.int32, device=dev).index_add_(0, owner_t, wrong)
    flat = [(float(x), int(w) == 0) for x, w in zip(sums.tolist(), misses.tolist())]
    out, k = [], 0
    for d in docs:
        out.append(flat[k : k + len(d.conts)])
        k += len(d.conts)
    return out


def _pad_id(lm: Any) -> int:
    tok = lm.tokenizer
    for candidate in (getattr(tok, "pad_token_id", None), getattr(tok, "eos_token_id", None)):
        if isinstance(candidate, int):
            return candidate
    return 0


def loglikelihood_shared(
    lm: Any, requests: Sequence[tuple[Any, list[int], list[int]]], say: Any = None, budget: int | None = None
) -> list[tuple[float, bool]]:
    """``(loglikelihood, is_greedy)`` per request, in order; each shared context computed once.
    ``requests`` as the harness's ``_loglikelihood_tokens`` takes them; none may need truncation.
    ``budget``: bytes a batch may plan to use (default: half the free GPU memory with ``batch_size: auto``
    on a GPU; none elsewhere)."""
    import torch

    from jsweep.eval.generate import Progress

    docs = group(requests)
    keep_arg = _takes(lm.model, "logits_to_keep")
    cuda = lm.device.type == "cuda"
    auto = isinstance(lm.batch_size, str)
    max_rows = int(getattr(lm, "max_batch_size", None) or 512) if auto else int(lm.batch_size)
    if budget is None and auto and cuda:
        budget = memory_budget(lm.model)
    res: list[tuple[float, bool] | None] = [None] * len(requests)
    progress = Progress("jglue loglikelihood", len(requests)) if say is not None else None
    i = 0
    while i < len(docs):
        rows = max_rows  # an integer batch size: that many rows (documents)
        if budget is not None:  # rows of this batch's width (longest first) within the budget
            ahead = docs[i : i + max_rows]  # the padded width is at most the longest context + the longest tail
            tail = max(d.width - len(d.ctx) for d in ahead)
            width = -(-(max(len(d.ctx) for d in ahead) + tail) // 8) * 8
            rows = max(1, min(max_rows, budget // row_bytes(lm.model, width, tail + 1)))
            if i == 0 and say is not None:
                say(
                    f"jglue: loglikelihood, {len(requests)} requests in {len(docs)} rows of shared context; "
                    f"first batch {rows} rows of {width} tokens (sized from free memory)"
                )
        elif auto:
            rows = 8  # auto off the GPU: 8, as the evaluator gives the harness
        batch = docs[i : i + rows]
        try:
            scores = score_batch(lm, batch, keep_arg)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if budget is None or "out of memory" not in str(exc).lower() or len(batch) == 1:
                raise
            if cuda:
                torch.cuda.empty_cache()
            budget //= 2
            if say is not None:
                say(f"jglue: out of memory with {len(batch)} rows; planning with half the memory")
            continue
        for d, doc_scores in zip(batch, scores):
            for j, answer in zip(d.index, doc_scores):
                res[j] = answer
        i += len(batch)
        if progress is not None:
            progress.update(sum(len(d.conts) for d in batch))
    missing = sum(r is None for r in res)
    if missing:
        raise RuntimeError(f"loglikelihood: {missing} requests were not scored")
    return res  # type: ignore[return-value]
