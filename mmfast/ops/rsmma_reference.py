"""Plain-PyTorch implementations of RS-MMA's windowed cross attention.

Query segment i (tokens [i*Lq/F, (i+1)*Lq/F)) attends to the keys of key segments
(i + shift_b + s) mod F, s = 0..window-1. These functions are the references that the Triton
kernels, the tests and the benchmarks are compared with; they validate nothing (the public entry
point `mmfast.ops.rsmma_attention` does).

- `naive`: full attention with a boolean [Lq, Lk] mask: simple, O(Lq*Lk) work.
- `gather`: each query segment's window of keys gathered by segment (F+W-1 segment indices, no
  per-token index tables), then one SDPA call over (B, H, F) batches: O(Lq*W*Lk/F) work.
- `gather_..._lse` / `gather_..._backward`: the same windows with explicit scores, returning the
  log-sum-exp, and the matching gradients: the CPU implementation of the `mmfast::rsmma_fwd` /
  `mmfast::rsmma_bwd` custom ops.
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
    lq: int,
    lk: int,
    segments: int,
    window: int,
    shift: Shift,
    device=None,
    rows: slice = slice(None),
) -> Tensor:
    """Boolean mask [Bs, Lq, Lk] (or the query `rows` of it), True where query i may attend key j
    (Bs = 1 for an int shift)."""
    seg_q = (torch.arange(lq, device=device, dtype=torch.int32) // (lq // segments))[rows]
    seg_k = torch.arange(lk, device=device, dtype=torch.int32) // (lk // segments)
    rel = seg_k[None, :] - seg_q[:, None]  # [rows, Lk]
    shift_t = _shift_tensor(shift, rel.device).to(torch.int32)
    return torch.remainder(rel[None] - shift_t[:, None, None], segments) < window


NAIVE_CHUNK = 2**25  # scores per query chunk of the naive reference (128 MiB in fp32)


def rsmma_naive_lse(
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


def rsmma_naive(
    q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift, scale: float
) -> Tensor:
    """Masked full attention; see `rsmma_naive_lse`. Returns out [B, H, Lq, D]."""
    return rsmma_naive_lse(q, k, v, segments, window, shift, scale)[0]


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


def rsmma_gather(
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


def rsmma_gather_lse(
    q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift, scale: float
) -> tuple[Tensor, Tensor]:
    """Gathered windows with explicit scores, for the log-sum-exp that SDPA does not return.

    q: [B, H, Lq, D], k, v: [B, H, Lk, D] -> (out [B, H, Lq, D] in q's dtype, lse [B, H, Lq] fp32,
    or fp64 for fp64 inputs). O(Lq * W * Lk/F) memory for the scores.
    """
    b, h, lq, d = q.shape
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    q5 = q.reshape(b, h, segments, lq // segments, d).to(acc)  # [B, H, F, SQ, D]
    k5 = gather_windows(k, segments, window, shift).to(acc)  # [B, H, F, W*SK, D]
    v5 = gather_windows(v, segments, window, shift).to(acc)
    scores = torch.matmul(q5, k5.transpose(-1, -2)) * scale
    lse = torch.logsumexp(scores, dim=-1)  # [B, H, F, SQ]
    out = torch.matmul(torch.exp(scores - lse[..., None]), v5)
    return out.reshape(b, h, lq, d).to(q.dtype), lse.reshape(b, h, lq)


def scatter_windows(xw: Tensor, segments: int, window: int, shift: Shift) -> Tensor:
    """The adjoint of `gather_windows`: [B, H, F, W * L/F, D] -> [B, H, L, D], each window row's
    segments summed back into the segments they were copied from."""
    b, h, f, wl, d = xw.shape
    seg = wl // window
    src = xw.reshape(b, h, segments * window, seg * d)  # row i * W + s holds segment i + shift + s
    o_rel = (
        torch.arange(segments, device=xw.device)[:, None] + torch.arange(window, device=xw.device)
    ).reshape(-1)
    shift_t = _shift_tensor(shift, xw.device)
    idx = torch.remainder(o_rel[None, :] + shift_t[:, None], segments)  # [Bs, F*W]
    idx = idx[:, None, :, None].expand(b, h, segments * window, seg * d)
    out = xw.new_zeros(b, h, segments, seg * d).scatter_add_(2, idx, src)
    return out.reshape(b, h, segments * seg, d)


def rsmma_gather_backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    segments: int,
    window: int,
    shift: Shift,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of `rsmma_gather_lse`'s out, from the saved out and lse.

    dout, q, out: [B, H, Lq, D]; k, v: [B, H, Lk, D]; lse: [B, H, Lq] ->
    (dq [B, H, Lq, D], dk [B, H, Lk, D], dv [B, H, Lk, D]) in the inputs' dtype.
    """
    b, h, lq, d = q.shape
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    sq = lq // segments

    def seg5(x: Tensor) -> Tensor:
        return x.reshape(b, h, segments, sq, d).to(acc)

    q5, do5 = seg5(q), seg5(dout)
    k5 = gather_windows(k, segments, window, shift).to(acc)  # [B, H, F, W*SK, D]
    v5 = gather_windows(v, segments, window, shift).to(acc)
    lse4 = lse.reshape(b, h, segments, sq, 1).to(acc)
    p = torch.exp(torch.matmul(q5, k5.transpose(-1, -2)) * scale - lse4)  # [B, H, F, SQ, W*SK]
    delta = (do5 * seg5(out)).sum(-1, keepdim=True)  # [B, H, F, SQ, 1]
    ds = p * (torch.matmul(do5, v5.transpose(-1, -2)) - delta)
    dq = torch.matmul(ds, k5) * scale
    dk = scatter_windows(torch.matmul(ds.transpose(-1, -2), q5) * scale, segments, window, shift)
    dv = scatter_windows(torch.matmul(p.transpose(-1, -2), do5), segments, window, shift)
    return dq.reshape(b, h, lq, d).to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


def rsmma_release(
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
