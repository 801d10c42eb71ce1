"""Plain-PyTorch implementations of RS-MMA's windowed cross attention.

Query segment i (tokens [i*Lq/F, (i+1)*Lq/F)) attends to the keys of key segments
(i + shift_b + s) mod F, s = 0..window-1. These functions are the references that the Triton
kernels, the tests and the benchmarks are compared with; they validate nothing (the public entry
point `mmfast.ops.windowed_cross_attention` does).

- `naive`: full attention with a boolean [Lq, Lk] mask: simple, O(Lq*Lk) work.
- `gather`: each query segment's window of keys gathered by segment (F+W-1 segment indices, no
  per-token index tables), then one SDPA call over (B, H, F) batches: O(Lq*W*Lk/F) work.
- `release`: the original release's algorithm (a Python loop over frames with per-frame K/V
  copies), kept for benchmarks only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

Shift = int | Tensor


def _shift_tensor(shift: Shift, device: torch.device) -> Tensor:
    """shift as a LongTensor [Bs] (Bs = 1 for an int shift)."""
    if isinstance(shift, Tensor):
        return shift.reshape(-1).to(device=device, dtype=torch.long)
    return torch.tensor([shift], device=device, dtype=torch.long)


def window_mask(
    lq: int, lk: int, segments: int, window: int, shift: Shift, device=None, rows: slice = slice(None)
) -> Tensor:
    """Boolean mask [Bs, Lq, Lk] (or the query `rows` of it), True where query i may attend key j
    (Bs = 1 for an int shift)."""
    seg_q = (torch.arange(lq, device=device, dtype=torch.int32) // (lq // segments))[rows]
    seg_k = torch.arange(lk, device=device, dtype=torch.int32) // (lk // segments)
    rel = seg_k[None, :] - seg_q[:, None]  # [rows, Lk]
    shift_t = _shift_tensor(shift, rel.device).to(torch.int32)
    return torch.remainder(rel[None] - shift_t[:, None, None], segments) < window


NAIVE_CHUNK = 2**25  # scores per query chunk of the naive reference (128 MiB in fp32)


def naive_windowed_attention_lse(
    q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift, scale: float
) -> tuple[Tensor, Tensor]:
    """Masked full attention. q: [B, H, Lq, D], k, v: [B, H, Lk, D].

    Every query is scored against every key and the scores outside its window are masked; the
    queries are processed in chunks of at most NAIVE_CHUNK scores, which bounds memory and does not
    change the result. Returns (out [B, H, Lq, D] in q's dtype, lse [B, H, Lq] in fp32, or fp64
    for fp64 inputs): lse is the natural log-sum-exp of the scaled, masked scores of each query.
    """
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    b, h, lq, _ = q.shape
    lk = k.shape[2]
    kt, va = k.to(acc).transpose(-1, -2), v.to(acc)
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    rows = max(1, NAIVE_CHUNK // max(b * h * lk, 1))
    outs, lses = [], []
    for i in range(0, lq, rows):
        mask = window_mask(lq, lk, segments, window, shift, q.device, slice(i, i + rows))[:, None]
        scores = torch.matmul(q[:, :, i : i + rows].to(acc) * scale, kt)
        if differentiable:
            scores = scores.masked_fill(~mask, float("-inf"))
            lse = torch.logsumexp(scores, dim=-1)
            probs = torch.exp(scores - lse[..., None])
        else:  # in place: a fraction of the allocations for the large no-grad calls
            lse = torch.logsumexp(scores.masked_fill_(~mask, float("-inf")), dim=-1)
            probs = scores.sub_(lse[..., None]).exp_()
        outs.append(torch.matmul(probs, va))
        lses.append(lse)
    return torch.cat(outs, dim=2).to(q.dtype), torch.cat(lses, dim=2)


def naive_windowed_attention(
    q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift, scale: float
) -> Tensor:
    """Masked full attention; see `naive_windowed_attention_lse`. Returns out [B, H, Lq, D]."""
    return naive_windowed_attention_lse(q, k, v, segments, window, shift, scale)[0]


def gather_windows(x: Tensor, segments: int, window: int, shift: Shift) -> Tensor:
    """The key windows of every query segment.

    x: [B, H, L, D] -> [B, H, F, W * L/F, D] where row i holds segments (i + shift + s) mod F,
    s = 0..W-1, in that order. One copy of (F+W-1)/F times x; the windows are a strided view of it.
    """
    b, h, length, d = x.shape
    seg = length // segments
    x5 = x.unflatten(2, (segments, seg))  # [B, H, F, seg, D]
    ext = segments + window - 1
    o_seg = torch.arange(ext, device=x.device)
    if isinstance(shift, Tensor):
        idx = torch.remainder(o_seg[None, :] + shift.reshape(-1, 1).long(), segments)  # [B, ext]
        rows = torch.take_along_dim(x5, idx[:, None, :, None, None], dim=2)
    else:
        rows = x5.index_select(2, torch.remainder(o_seg + shift, segments))
    flat = rows.flatten(2, 3)  # [B, H, ext * seg, D], contiguous
    return flat.unfold(2, window * seg, seg).transpose(-1, -2)  # [B, H, F, W * seg, D]


def gather_windowed_attention(
    q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift, scale: float
) -> Tensor:
    """Windowed attention as one SDPA call over (B, H, F) batches of gathered windows.

    q: [B, H, Lq, D], k, v: [B, H, Lk, D] -> [B, H, Lq, D].
    """
    b, h, lq, d = q.shape
    if window == segments:
        # Every query sees every key; the order of keys does not change attention.
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    q4 = q.reshape(b * h * segments, 1, lq // segments, d)
    k4 = gather_windows(k, segments, window, shift).reshape(b * h * segments, 1, -1, d)
    v4 = gather_windows(v, segments, window, shift).reshape(b * h * segments, 1, -1, d)
    out = F.scaled_dot_product_attention(q4, k4, v4, scale=scale)
    return out.reshape(b, h, lq, d)


def release_windowed_attention(
    q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift, scale: float
) -> Tensor:
    """The original release's algorithm, for benchmarks: per query segment, copy its window of
    keys and values with a per-token index and run a plain softmax attention. Int shift only.

    q: [B, H, Lq, D], k, v: [B, H, Lk, D] -> [B, H, Lq, D].
    """
    if isinstance(shift, Tensor):
        raise TypeError("the release's algorithm draws one int shift per call, got a tensor")
    lq, lk = q.shape[2], k.shape[2]
    sq, sk = lq // segments, lk // segments
    o_win = torch.arange(window * sk, device=q.device)
    root = math.sqrt(scale)  # the release scaled q and k by d^-1/4 each
    outs = []
    for i in range(segments):
        idx = torch.remainder(o_win + (i + shift) * sk, lk)
        k_i, v_i = k.index_select(2, idx), v.index_select(2, idx)
        w = torch.matmul(q[:, :, i * sq : (i + 1) * sq] * root, (k_i * root).transpose(-1, -2))
        outs.append(torch.matmul(torch.softmax(w, dim=-1), v_i))
    return torch.cat(outs, dim=2)
