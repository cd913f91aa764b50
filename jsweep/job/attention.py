"""Attention for padding-free packed batches, without a materialised mask.

TRL's padding-free collator (``packing=True``, bfd) flattens a micro-batch into one row and
passes ``cu_seq_lens_q``/``max_length_q``: where each packed example starts. With ``sdpa``,
transformers turns the packed ``position_ids`` into a dense block-diagonal mask, which is
correct but grows with the square of the packed length. ``jsweep_varlen`` (registered through
transformers' ``AttentionInterface``) hands the packed row to PyTorch's own Flash-Attention
varlen kernel (``torch.nn.attention.varlen.varlen_attn``, CUDA) with the cumulative lengths,
so examples never attend to each other and no mask exists. Where that kernel cannot run (CPU,
older torch), packed rows are attended example by example with causal sdpa: the same result,
still without a mask. Padded batches (evaluation, generation) and unpacked rows go to plain
sdpa with the mask transformers builds for them.

``train.attention``: ``auto`` picks ``varlen`` where the kernel runs, else ``sdpa``; ``varlen``,
``sdpa`` and ``eager`` force one.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any

NAME = "jsweep_varlen"  # the attn_implementation name registered with transformers
CHOICES = ("auto", "varlen", "sdpa", "eager")


def varlen_kernel():
    """torch.nn.attention.varlen.varlen_attn, or None when this torch has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def kernel_available(device: str) -> tuple[bool, str]:
    """Whether the varlen kernel runs on ``device``, and why not when it does not."""
    import torch

    if varlen_kernel() is None:
        return False, f"torch {torch.__version__} has no torch.nn.attention.varlen"
    if device != "cuda" or not torch.cuda.is_available():
        return False, f"the varlen kernel (Flash Attention) needs a CUDA GPU, this cell runs on {device}"
    major, _ = torch.cuda.get_device_capability()
    if major < 8:
        return False, f"the varlen kernel needs compute capability 8.0+, this GPU has {major}.x"
    return True, ""


def _segments_sdpa(q, k, v, cu: list[int], scaling: float | None, dropout: float):
    """Causal sdpa on each packed example on its own: (T, H, D) in, (T, H, D) out. No mask is built."""
    import torch
    import torch.nn.functional as F

    out = torch.empty_like(q)
    for start, end in itertools.pairwise(cu):
        if end <= start:
            continue
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))  # (H, n, D)
        out[start:end] = F.scaled_dot_product_attention(
            qs, ks, vs, is_causal=True, scale=scaling, dropout_p=dropout
        ).transpose(0, 1)
    return out


def packed_attention(
    q,
    k,
    v,
    cu_seq_lens,
    max_length: int,
    scaling: float | None = None,
    dropout: float = 0.0,
    use_kernel: bool | None = None,
):
    """Causal attention over packed examples. q, k, v: (T, H, D) (k and v may have fewer heads: GQA);
    cu_seq_lens: (N+1,) int32 starts of the examples, then T. Returns (T, H_q, D)."""
    import torch

    if k.shape[1] != q.shape[1]:  # GQA: one key/value head serves several query heads
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    kernel = varlen_kernel()
    if use_kernel is None:
        use_kernel = kernel is not None and q.is_cuda and dropout == 0.0
    half = (torch.float16, torch.bfloat16)
    if use_kernel and not all(t.dtype in half for t in (q, k, v)):
        # Flash Attention takes fp16/bf16 only. fp32 weights under bf16/fp16 autocast (a LoRA or small model
        # kept in fp32) reach here as fp32 q/k (RoPE's fp32 cos/sin promote them): run the kernel in the autocast
        # dtype, as sdpa does under autocast. Without autocast (an fp32 cell) attend example by example instead.
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None
        if dtype in half:
            q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        else:
            use_kernel = False
    if use_kernel:
        cu = cu_seq_lens.to(device=q.device, dtype=torch.int32)
        kwargs: dict[str, Any] = {"scale": scaling}
        if "window_size" in inspect.signature(kernel).parameters:
            kwargs["window_size"] = (-1, 0)  # causal
        else:  # torch 2.10: is_causal instead of a window
            kwargs["is_causal"] = True
        return kernel(q, k, v, cu, cu, int(max_length), int(max_length), **kwargs)
    return _segments_sdpa(q, k, v, [int(x) for x in cu_seq_lens.tolist()], scaling, dropout)


def jsweep_varlen_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
):
    """transformers attention function: (B, H, T, D) in, ((B, T, H, D), None) out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    packed = attention_mask is None and query.shape[0] == 1 and query.shape[2] == key.shape[2]
    if cu is None or not packed:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    max_length = kwargs.get("max_length_q") or int((cu[1:] - cu[:-1]).max())
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (T, H, D)
    out = packed_attention(q, k, v, cu, max_length, scaling=scaling, dropout=dropout if module.training else 0.0)
    return out.unsqueeze(0), None


def _mask(*, attention_mask=None, **kwargs):
    """The mask function of jsweep_varlen: none for packed or plain causal rows (the attention reads
    cu_seq_lens), sdpa's own for padded batches. transformers passes every argument by keyword."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(attention_mask=attention_mask, **kwargs)


def register() -> None:
    """Register jsweep_varlen with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, jsweep_varlen_attention)
    AttentionMaskInterface.register(NAME, _mask)


def resolve(choice: str, device: str, packing: bool) -> tuple[str, str]:
    """The attn_implementation for a cell (``train.attention``), and a note for the cell log ('' if none).
    ``auto``: jsweep_varlen where the kernel runs and batches are packed, else sdpa."""
    if choice in ("sdpa", "eager"):
        return choice, ""
    ok, why = kernel_available(device)
    if choice == "auto" and not packing:
        return "sdpa", ""
    if ok:
        return NAME, ""
    if choice == "varlen":
        # Asked for explicitly: packed rows still never see each other, example by example.
        return NAME, f"attention: {why}; packed examples are attended one by one with causal sdpa (correct, slower)"
    return "sdpa", (
        f"attention: {why}; using sdpa, which builds a block-diagonal mask over each packed row (correct, slower)"
    )


def attention_dropout(model) -> float:
    """The largest attention dropout probability in the model (GPT-2's ``attn_dropout`` layers, a float
    ``attention_dropout`` on attention modules): while training, above 0 the varlen kernel cannot run."""
    import torch

    found = 0.0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and "attn" in name.rsplit(".", 1)[-1]:
            found = max(found, float(module.p))
        elif isinstance(getattr(module, "attention_dropout", None), float):
            found = max(found, module.attention_dropout)
    return found


def set_attention(model, implementation: str) -> None:
    """Switch a (possibly PEFT-wrapped) model's attention implementation."""
    if implementation == NAME:
        register()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(implementation)
