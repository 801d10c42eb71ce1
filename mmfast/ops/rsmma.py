"""RS-MMA (random-shift windowed cross attention): the public entry point and its backends."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmfast.ops import backends, rsmma_reference, rsmma_triton
from mmfast.ops.backends import Backend
from mmfast.ops.rsmma_reference import Shift


def _always(q: Tensor, k: Tensor, v: Tensor, shift: Shift, *, explicit: bool) -> str | None:
    return None


def _int_shift_only(q: Tensor, k: Tensor, v: Tensor, shift: Shift, *, explicit: bool) -> str | None:
    return (
        "the release's algorithm takes one int shift per call"
        if isinstance(shift, Tensor)
        else None
    )


# fn(q, k, v, segments, window, shift, scale) -> out; why_not(q, k, v, shift, explicit=...).
RSMMA_BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("triton", rsmma_triton.triton_rsmma_attention, rsmma_triton.triton_why_not, 2),
        Backend("gather", rsmma_reference.rsmma_gather, _always, 1),
        Backend("naive", rsmma_reference.rsmma_naive, _always),
        # The original per-frame loop, for benchmarks of release-style execution; never auto.
        Backend("release", rsmma_reference.rsmma_release, _int_shift_only),
    )
}


def rsmma_backend(q: Tensor, k: Tensor, v: Tensor, shift: Shift, backend: str = "auto") -> Backend:
    """The backend of `RSMMA_BACKENDS` that runs these inputs (q: [B, H, Lq, D], k, v:
    [B, H, Lk, D], shift: int or [B]): the one named, or for "auto" the runnable one of highest
    priority. ValueError with the reasons when none can."""
    return backends.select_backend("RS-MMA", RSMMA_BACKENDS, backend, q, k, v, shift)


def check_inputs(q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift) -> None:
    """Raise TypeError / ValueError naming what was expected and what came."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be [B, H, L, D], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if k.shape != v.shape:
        raise ValueError(
            f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    b, h, lq, d = q.shape
    if (k.shape[0], k.shape[1], k.shape[3]) != (b, h, d):
        raise ValueError(
            f"k must be [B={b}, H={h}, Lk, D={d}] to match q {tuple(q.shape)}, got {tuple(k.shape)}"
        )
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
        raise ValueError(f"segments must be a positive int, got {segments!r}")
    lk = k.shape[2]
    if lq % segments or lk % segments or lq == 0 or lk == 0:
        raise ValueError(
            f"query length {lq} and key length {lk} must both be positive multiples of "
            f"segments={segments}"
        )
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= segments:
        raise ValueError(f"window must be an int in [1, segments={segments}], got {window!r}")
    if isinstance(shift, Tensor):
        if shift.dtype.is_floating_point or shift.dtype == torch.bool or shift.is_complex():
            raise TypeError(
                f"shift must be an int or an integer tensor [B], got dtype {shift.dtype}"
            )
        if shift.shape != (b,):
            raise ValueError(f"a shift tensor must have shape [B={b}], got {tuple(shift.shape)}")
        if shift.device != q.device:
            raise ValueError(f"shift must be on q's device {q.device}, got {shift.device}")
    elif isinstance(shift, bool) or not isinstance(shift, int):
        raise TypeError(
            f"shift must be an int or an integer tensor [B], got {type(shift).__name__}"
        )


def rsmma_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    segments: int,
    window: int,
    shift: Shift,
    *,
    scale: float | None = None,
    backend: str = "auto",
) -> Tensor:
    """Random-shift windowed cross attention (RS-MMA).

    Query segment i (tokens [i*Lq/F, (i+1)*Lq/F), F = `segments`) attends only to the keys of key
    segments (i + shift + s) mod F for s = 0..window-1.

    Args:
        q: [B, H, Lq, D] queries.
        k, v: [B, H, Lk, D] keys and values.
        segments: F, the number of segments of both sequences (Lq and Lk are multiples of it).
        window: S, key segments per query segment, 1 <= S <= F.
        shift: R, an int for the whole batch or a LongTensor [B] on q's device, one per sample
            (taken mod F).
        scale: softmax scale, default 1/sqrt(D).
        backend: "auto" (the fastest that supports the inputs: "triton" on CUDA devices of compute
            capability >= 8.0, else "gather"), "naive", "gather", "release" (the original
            per-frame loop), "triton" (the fused kernels; on CPU tensors the Triton interpreter if
            TRITON_INTERPRET=1 was set before triton was imported, else the op's gather
            implementation).

    Returns:
        [B, H, Lq, D] in q's dtype.

    Example:
        >>> q = torch.randn(2, 4, 16 * 25, 64); k = v = torch.randn(2, 4, 16 * 64, 64)
        >>> rsmma_attention(q, k, v, segments=16, window=4, shift=3).shape
        torch.Size([2, 4, 400, 64])
    """
    check_inputs(q, k, v, segments, window, shift)
    if not isinstance(shift, Tensor):
        shift = shift % segments
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    chosen = rsmma_backend(q, k, v, shift, backend)
    return chosen.fn(q, k, v, segments, window, shift, scale)
