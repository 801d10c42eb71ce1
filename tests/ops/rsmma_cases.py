"""Shared helpers of the RS-MMA kernel tests: inputs, the float64 reference, NaN-poisoned launches."""

from __future__ import annotations

import math

import torch

from mmfast.kernels.rsmma_bwd import rsmma_bwd
from mmfast.kernels.rsmma_fwd import TileConfig, rsmma_fwd
from mmfast.ops.rsmma_reference import rsmma_naive_lse

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 2e-2}
# One small tiling for all three kernels: multi-tile segments and packed short segments at small L.
SMALL_TILES = TileConfig(block_own=16, block_loop=16, num_warps=4, num_stages=2)
NAMES = ("out", "lse", "dq", "dk", "dv")
# (SQ, SK, W) of both directions at every RS-MMA level of mmdiffusion-64 (F = 16, D = 64).
MODEL_SHAPES = [
    (400, 1024, 1),
    (1024, 400, 1),
    (100, 256, 4),
    (256, 100, 4),
    (25, 64, 8),
    (64, 25, 8),
    (25, 64, 16),
    (64, 25, 16),
]


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref|| in float64. A reference that vanishes identically (one key per window
    makes dQ = dK = 0) is compared in absolute RMS instead (the inputs have unit scale), since its
    relative error is infinite for any rounding."""
    x, ref = x.double(), ref.double()
    rms = ref.numel() ** 0.5
    denom = ref.norm().item()
    return ((x - ref).norm() / (denom if denom > 1e-9 * rms else rms)).item()


def make_inputs(b, h, f, sq, sk, d, dtype, seed, device=DEVICE):
    """Fresh q [B,H,F*SQ,D], k, v [B,H,F*SK,D] and dout in `dtype`, from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, f * sq, d, generator=g, dtype=torch.float64)
    k = torch.randn(b, h, f * sk, d, generator=g, dtype=torch.float64)
    v = torch.randn(b, h, f * sk, d, generator=g, dtype=torch.float64)
    dout = torch.randn(b, h, f * sq, d, generator=g, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype) for t in (q, k, v, dout)]


def reference(q, k, v, dout, f, window, shift, scale):
    """out, lse, dq, dk, dv of the naive reference in float64, on the kernel's (rounded) inputs."""
    q, k, v = (t.double().requires_grad_() for t in (q, k, v))
    out, lse = rsmma_naive_lse(q, k, v, f, window, shift, scale)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), dout.double())
    return out.detach(), lse.detach(), dq, dk, dv


def run_kernels(q, k, v, dout, f, window, shift, scale, config=None):
    """The kernels' out, lse, dq, dk, dv, written into NaN-filled outputs (an unwritten element
    stays NaN)."""
    nan = float("nan")
    out, lse = rsmma_fwd(
        q,
        k,
        v,
        f,
        window,
        shift,
        scale,
        out=torch.full_like(q, nan),
        lse=torch.full(q.shape[:3], nan, device=q.device),
        config=config,
    )
    dq, dk, dv = rsmma_bwd(
        dout,
        q,
        k,
        v,
        out,
        lse,
        f,
        window,
        shift,
        scale,
        dq=torch.full_like(q, nan),
        dk=torch.full_like(k, nan),
        dv=torch.full_like(v, nan),
        dkdv_cfg=config,
        dq_cfg=config,
    )
    return out, lse, dq, dk, dv


def check_case(b, h, f, sq, sk, d, window, shift, dtype, seed, config=None) -> dict[str, float]:
    """Run kernels and reference on one case; assert every output is written and within TOL.

    Returns the relative errors ||x - ref|| / ||ref|| by name.
    """
    q, k, v, dout = make_inputs(b, h, f, sq, sk, d, dtype, seed)
    if isinstance(shift, list):
        shift = torch.tensor(shift, device=q.device)
    scale = 1 / math.sqrt(d)
    got = run_kernels(q, k, v, dout, f, window, shift, scale, config)
    want = reference(q, k, v, dout, f, window, shift, scale)
    errs = {}
    for name, x, ref in zip(NAMES, got, want):
        assert x.dtype == (torch.float32 if name == "lse" else dtype), name
        assert not torch.isnan(x).any(), f"{name}: elements left unwritten (NaN)"
        errs[name] = rel_err(x, ref)
    bad = {n: e for n, e in errs.items() if not e < TOL[dtype]}
    assert not bad, f"relative errors over {TOL[dtype]:g}: {bad}"
    return errs
