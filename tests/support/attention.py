"""A float64 reference for padding-free packed attention (tests of jsweep.job.attention, on CPU and GPU)."""

from __future__ import annotations


def dense_reference(q, k, v, cu, scale):
    """float64 attention with an explicit block-diagonal causal mask: (T, H, D)."""
    import torch

    T = q.shape[0]
    seg = torch.repeat_interleave(torch.arange(len(cu) - 1), torch.tensor(cu).diff())
    allowed = (seg[:, None] == seg[None, :]) & torch.ones(T, T, dtype=torch.bool).tril()
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scores = torch.einsum("thd,shd->hts", q.double(), k.double()) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hts,shd->thd", scores.softmax(-1), v.double())
