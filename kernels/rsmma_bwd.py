"""RS-MMA backward: dQ, dK, dV of the windowed cross attention, without atomics.

    P = exp(scale * Q K^T - lse) on the window mask,  dV = P^T dO,  dP = dO V^T,
    dS = P * (dP - Delta) with Delta = rowsum(dO * O),  dQ = scale * dS K,  dK = scale * dS^T Q.

q, out, dout: [B, H, Lq, D]; k, v: [B, H, Lk, D]; lse: [B, H, Lq] (natural log, from the forward).
Three launches, each over the whole B x H x tiles grid:
- preprocess: Delta [B, H, Lq] fp32.
- dK/dV: a program owns a tile of keys (or G short key segments) and loops over the queries that
  see them. Query segment i sees key segment j iff (j - i - r) mod F < W, so key segment j is seen
  by the W query segments (j - r - W + 1 .. j - r) mod F: again one cyclic run of W*SQ query tokens,
  the forward's structure with the roles swapped. Each program writes its own rows of dK and dV.
- dQ: a program owns query rows and loops over their key window, as in the forward.
So every output row has exactly one writer: no atomics, deterministic. Recomputing P in both
kernels costs one extra Q K^T product, the usual price of an atomic-free FlashAttention-2 backward.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from mmfast.kernels import device
from mmfast.kernels.rsmma_fwd import (
    LOG2E,
    TileConfig,
    _own_rows,
    _run_mask,
    _shift_of,
    check_out,
    check_qkv,
    input_precision,
    own_tiling,
    pick_config,
    shift_args,
)


# ----------------------------------------------------------------------------- configs
def dkdv_config(
    seg_q: int,
    seg_k: int,
    n_segments: int,
    window: int,
    head_dim: int,
    fp32: bool = False,
    arch: int = 90,
) -> TileConfig:
    """dK/dV: keys owned (two [BLOCK_KV, D] fp32 accumulators), queries looped."""
    # Two accumulators plus K and V held in registers: 128 owned rows only up to D = 64.
    max_own, max_loop = (128 if head_dim <= 64 else 64), 64
    if arch < 90:
        # ptxas for sm_80 (mma.sync keeps operand fragments in registers too): Triton 3.6 spilled
        # 128 keys at D = 64 (255 registers, 16 bytes of stack; 64 keys: 247 and none), and both
        # versions spilled 64 x 64 tiles at D = 128 (255 registers, 16-24 bytes; 64 x 32: 172).
        max_own = 64
        if head_dim >= 128:
            max_loop = 32
    return pick_config(seg_k, seg_q, n_segments, window, head_dim, max_own, max_loop, 2, fp32, arch)


def dq_config(
    seg_q: int,
    seg_k: int,
    n_segments: int,
    window: int,
    head_dim: int,
    fp32: bool = False,
    arch: int = 90,
) -> TileConfig:
    """dQ: queries owned (Q, dO and the dQ accumulator in registers), keys looped."""
    max_own, max_loop = (128 if head_dim <= 64 else 64), 64
    if arch < 90 and head_dim >= 128:
        # ptxas for sm_86 (Triton 3.8, bf16) held 64 x 64 tiles on 8 warps to 128 registers and
        # spilled 8-16 bytes; 64 x 32 take 126-128 (Triton 3.6, 3.8) and none.
        max_loop = 32
    return pick_config(seg_q, seg_k, n_segments, window, head_dim, max_own, max_loop, 1, fp32, arch)


PREPROCESS_BLOCK_L = 64


# ----------------------------------------------------------------------------- kernels
@triton.jit
def rsmma_bwd_kernel_preprocess(
    p_out,
    p_dout,
    p_delta,
    stride_ob,
    stride_oh,
    stride_ol,
    stride_od,
    stride_dob,
    stride_doh,
    stride_dol,
    stride_dod,
    H,
    L,
    progs_per_bh,
    HEAD_DIM: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    i_p = tl.program_id(0)
    i_bh = i_p // progs_per_bh
    i_b = (i_bh // H).to(tl.int64)
    i_h = (i_bh % H).to(tl.int64)
    o_l = (i_p % progs_per_bh) * BLOCK_L + tl.arange(0, BLOCK_L)
    m_l = o_l < L
    o_d = tl.arange(0, HEAD_DIM)
    o_l64 = o_l.to(tl.int64)
    b_o = tl.load(
        p_out
        + i_b * stride_ob
        + i_h * stride_oh
        + o_l64[:, None] * stride_ol
        + o_d[None, :] * stride_od,
        mask=m_l[:, None],
        other=0.0,
    ).to(tl.float32)  # [BLOCK_L, HEAD_DIM]
    b_do = tl.load(
        p_dout
        + i_b * stride_dob
        + i_h * stride_doh
        + o_l64[:, None] * stride_dol
        + o_d[None, :] * stride_dod,
        mask=m_l[:, None],
        other=0.0,
    ).to(tl.float32)  # [BLOCK_L, HEAD_DIM]
    tl.store(p_delta + i_bh.to(tl.int64) * L + o_l, tl.sum(b_o * b_do, 1), mask=m_l)


@triton.jit(do_not_specialize=["shift"])
def rsmma_bwd_kernel_dkdv(
    p_q,
    p_k,
    p_v,
    p_dout,
    p_lse,
    p_delta,
    p_dk,
    p_dv,
    p_shift,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vl,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dol,
    stride_dod,
    stride_dkb,
    stride_dkh,
    stride_dkl,
    stride_dkd,
    stride_dvb,
    stride_dvh,
    stride_dvl,
    stride_dvd,
    H,
    SEG_Q,
    SEG_K,
    F,
    W,
    shift,
    segs_per_prog,
    tiles_per_seg,
    progs_per_bh,
    scale,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_KV: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    HAS_SHIFT_TENSOR: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    i_p = tl.program_id(0)
    i_bh = i_p // progs_per_bh
    i_b = i_bh // H
    i_h = i_bh % H
    r = _shift_of(i_b, shift, p_shift, F, HAS_SHIFT_TENSOR)
    seg0, n_seg, o_k, m_k, g = _own_rows(
        i_p % progs_per_bh, SEG_K, F, segs_per_prog, tiles_per_seg, BLOCK_KV
    )
    o_d = tl.arange(0, HEAD_DIM)
    n_q = F * SEG_Q
    # The first query segment that sees key segment seg0 is seg0 - r - (W - 1), mod F.
    q_start = ((((seg0 - r - W + 1) % F) + F) % F) * SEG_Q
    run = (W + n_seg - 1) * SEG_Q

    i_b64 = i_b.to(tl.int64)
    i_h64 = i_h.to(tl.int64)
    p_q += i_b64 * stride_qb + i_h64 * stride_qh
    p_dout += i_b64 * stride_dob + i_h64 * stride_doh
    p_lse += i_bh.to(tl.int64) * n_q
    p_delta += i_bh.to(tl.int64) * n_q
    o_k64 = o_k.to(tl.int64)
    b_k = tl.load(
        p_k
        + i_b64 * stride_kb
        + i_h64 * stride_kh
        + o_k64[:, None] * stride_kl
        + o_d[None, :] * stride_kd,
        mask=m_k[:, None],
        other=0.0,
    )  # [BLOCK_KV, HEAD_DIM]
    b_v = tl.load(
        p_v
        + i_b64 * stride_vb
        + i_h64 * stride_vh
        + o_k64[:, None] * stride_vl
        + o_d[None, :] * stride_vd,
        mask=m_k[:, None],
        other=0.0,
    )  # [BLOCK_KV, HEAD_DIM]

    b_dk = tl.zeros([BLOCK_KV, HEAD_DIM], dtype=tl.float32)
    b_dv = tl.zeros([BLOCK_KV, HEAD_DIM], dtype=tl.float32)
    for t0 in range(0, run, BLOCK_Q):
        o_t = t0 + tl.arange(0, BLOCK_Q)  # relative tokens of the query run
        m_t = o_t < run
        o_q = (q_start + o_t) % n_q  # the cyclic wrap
        o_q64 = o_q.to(tl.int64)
        b_q = tl.load(
            p_q + o_q64[:, None] * stride_ql + o_d[None, :] * stride_qd,
            mask=m_t[:, None],
            other=0.0,
        )  # [BLOCK_Q, HEAD_DIM]
        b_do = tl.load(
            p_dout + o_q64[:, None] * stride_dol + o_d[None, :] * stride_dod,
            mask=m_t[:, None],
            other=0.0,
        )  # [BLOCK_Q, HEAD_DIM]
        b_lse2 = tl.load(p_lse + o_q, mask=m_t, other=0.0) * 1.4426950408889634  # [BLOCK_Q]
        b_delta = tl.load(p_delta + o_q, mask=m_t, other=0.0)  # [BLOCK_Q]
        b_st = tl.dot(b_k, tl.trans(b_q), input_precision=INPUT_PRECISION) * qk_scale
        m_st = _run_mask(o_t, g, SEG_Q, W)  # [BLOCK_KV, BLOCK_Q]
        b_pt = tl.where(m_st, tl.exp2(b_st - b_lse2[None, :]), 0.0)  # P^T
        b_dv += tl.dot(b_pt.to(b_do.dtype), b_do, input_precision=INPUT_PRECISION)
        b_dpt = tl.dot(b_v, tl.trans(b_do), input_precision=INPUT_PRECISION)  # dP^T
        b_dst = b_pt * (b_dpt - b_delta[None, :])  # [BLOCK_KV, BLOCK_Q]
        b_dk += tl.dot(b_dst.to(b_q.dtype), b_q, input_precision=INPUT_PRECISION)

    tl.store(
        p_dk
        + i_b64 * stride_dkb
        + i_h64 * stride_dkh
        + o_k64[:, None] * stride_dkl
        + o_d[None, :] * stride_dkd,
        (b_dk * scale).to(p_dk.dtype.element_ty),
        mask=m_k[:, None],
    )
    tl.store(
        p_dv
        + i_b64 * stride_dvb
        + i_h64 * stride_dvh
        + o_k64[:, None] * stride_dvl
        + o_d[None, :] * stride_dvd,
        b_dv.to(p_dv.dtype.element_ty),
        mask=m_k[:, None],
    )


@triton.jit(do_not_specialize=["shift"])
def rsmma_bwd_kernel_dq(
    p_q,
    p_k,
    p_v,
    p_dout,
    p_lse,
    p_delta,
    p_dq,
    p_shift,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vl,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dol,
    stride_dod,
    stride_dqb,
    stride_dqh,
    stride_dql,
    stride_dqd,
    H,
    SEG_Q,
    SEG_K,
    F,
    W,
    shift,
    segs_per_prog,
    tiles_per_seg,
    progs_per_bh,
    scale,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_KV: tl.constexpr,
    HAS_SHIFT_TENSOR: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    i_p = tl.program_id(0)
    i_bh = i_p // progs_per_bh
    i_b = i_bh // H
    i_h = i_bh % H
    r = _shift_of(i_b, shift, p_shift, F, HAS_SHIFT_TENSOR)
    seg0, n_seg, o_q, m_q, g = _own_rows(
        i_p % progs_per_bh, SEG_Q, F, segs_per_prog, tiles_per_seg, BLOCK_Q
    )
    o_d = tl.arange(0, HEAD_DIM)
    n_k = F * SEG_K
    k_start = ((seg0 + r) % F) * SEG_K
    run = (W + n_seg - 1) * SEG_K

    i_b64 = i_b.to(tl.int64)
    i_h64 = i_h.to(tl.int64)
    o_q64 = o_q.to(tl.int64)
    p_k += i_b64 * stride_kb + i_h64 * stride_kh
    p_v += i_b64 * stride_vb + i_h64 * stride_vh
    b_q = tl.load(
        p_q
        + i_b64 * stride_qb
        + i_h64 * stride_qh
        + o_q64[:, None] * stride_ql
        + o_d[None, :] * stride_qd,
        mask=m_q[:, None],
        other=0.0,
    )  # [BLOCK_Q, HEAD_DIM]
    b_do = tl.load(
        p_dout
        + i_b64 * stride_dob
        + i_h64 * stride_doh
        + o_q64[:, None] * stride_dol
        + o_d[None, :] * stride_dod,
        mask=m_q[:, None],
        other=0.0,
    )  # [BLOCK_Q, HEAD_DIM]
    o_row = i_bh.to(tl.int64) * (F * SEG_Q) + o_q
    b_lse2 = tl.load(p_lse + o_row, mask=m_q, other=0.0) * 1.4426950408889634  # [BLOCK_Q]
    b_delta = tl.load(p_delta + o_row, mask=m_q, other=0.0)  # [BLOCK_Q]

    b_dq = tl.zeros([BLOCK_Q, HEAD_DIM], dtype=tl.float32)
    for t0 in range(0, run, BLOCK_KV):
        o_t = t0 + tl.arange(0, BLOCK_KV)
        m_t = o_t < run
        o_k = ((k_start + o_t) % n_k).to(tl.int64)  # the cyclic wrap
        b_k = tl.load(
            p_k + o_k[:, None] * stride_kl + o_d[None, :] * stride_kd, mask=m_t[:, None], other=0.0
        )  # [BLOCK_KV, HEAD_DIM]
        b_v = tl.load(
            p_v + o_k[:, None] * stride_vl + o_d[None, :] * stride_vd, mask=m_t[:, None], other=0.0
        )  # [BLOCK_KV, HEAD_DIM]
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision=INPUT_PRECISION) * qk_scale
        b_p = tl.where(_run_mask(o_t, g, SEG_K, W), tl.exp2(b_s - b_lse2[:, None]), 0.0)
        b_dp = tl.dot(b_do, tl.trans(b_v), input_precision=INPUT_PRECISION)  # [BLOCK_Q, BLOCK_KV]
        b_ds = b_p * (b_dp - b_delta[:, None])
        b_dq += tl.dot(b_ds.to(b_k.dtype), b_k, input_precision=INPUT_PRECISION)

    tl.store(
        p_dq
        + i_b64 * stride_dqb
        + i_h64 * stride_dqh
        + o_q64[:, None] * stride_dql
        + o_d[None, :] * stride_dqd,
        (b_dq * scale).to(p_dq.dtype.element_ty),
        mask=m_q[:, None],
    )


# ----------------------------------------------------------------------------- launcher
def rsmma_bwd(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    segments: int,
    window: int,
    shift: int | Tensor,
    scale: float | None = None,
    *,
    dq: Tensor | None = None,
    dk: Tensor | None = None,
    dv: Tensor | None = None,
    dkdv_cfg: TileConfig | None = None,
    dq_cfg: TileConfig | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Launch the RS-MMA backward.

    Args:
        dout, out: [B, H, Lq, D] in q's dtype; q: [B, H, Lq, D]; k, v: [B, H, Lk, D].
        lse: [B, H, Lq] fp32 contiguous, the forward's log-sum-exp.
        segments, window, shift, scale: as in the forward (shift: int or integer tensor [B]).
        dq, dk, dv: optional outputs to write (shapes and dtypes of q, k, v).
        dkdv_cfg, dq_cfg: TileConfigs overriding `dkdv_config` / `dq_config` (benchmarks).

    Returns:
        (dq [B, H, Lq, D], dk [B, H, Lk, D], dv [B, H, Lk, D]) in the inputs' dtype.
    """
    check_qkv(q, k, v, segments, window)
    b, h, lq, d = q.shape
    lk = k.shape[2]
    for name, t in (("dout", dout), ("out", out)):
        check_out(name, t, (b, h, lq, d), q.dtype, q.device)
    check_out("lse", lse, (b, h, lq), torch.float32, q.device)
    if not lse.is_contiguous():
        raise ValueError("lse must be contiguous")
    check_out("dq", dq, (b, h, lq, d), q.dtype, q.device)
    check_out("dk", dk, (b, h, lk, d), q.dtype, q.device)
    check_out("dv", dv, (b, h, lk, d), q.dtype, q.device)
    shift_int, shift_t = shift_args(shift, b, q.device)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    dq = torch.empty(b, h, lq, d, dtype=q.dtype, device=q.device) if dq is None else dq
    dk = torch.empty(b, h, lk, d, dtype=q.dtype, device=q.device) if dk is None else dk
    dv = torch.empty(b, h, lk, d, dtype=q.dtype, device=q.device) if dv is None else dv
    delta = torch.empty(b, h, lq, dtype=torch.float32, device=q.device)
    seg_q, seg_k = lq // segments, lk // segments
    p_shift = shift_t if shift_t is not None else delta  # unused without HAS_SHIFT_TENSOR
    prec = input_precision(q.dtype)

    with device.on_device(q):
        pre_progs = triton.cdiv(lq, PREPROCESS_BLOCK_L)
        rsmma_bwd_kernel_preprocess[(b * h * pre_progs,)](
            out,
            dout,
            delta,
            *out.stride(),
            *dout.stride(),
            H=h,
            L=lq,
            progs_per_bh=pre_progs,
            HEAD_DIM=d,
            BLOCK_L=PREPROCESS_BLOCK_L,
        )

        fp32, arch = q.dtype == torch.float32, device.arch(q)
        cfg = dkdv_cfg or dkdv_config(seg_q, seg_k, segments, window, d, fp32, arch)
        segs_per_prog, tiles_per_seg = own_tiling(seg_k, segments, cfg.block_own)
        progs = triton.cdiv(segments, segs_per_prog) * tiles_per_seg
        rsmma_bwd_kernel_dkdv[(b * h * progs,)](
            q,
            k,
            v,
            dout,
            lse,
            delta,
            dk,
            dv,
            p_shift,
            *q.stride(),
            *k.stride(),
            *v.stride(),
            *dout.stride(),
            *dk.stride(),
            *dv.stride(),
            H=h,
            SEG_Q=seg_q,
            SEG_K=seg_k,
            F=segments,
            W=window,
            shift=shift_int,
            segs_per_prog=segs_per_prog,
            tiles_per_seg=tiles_per_seg,
            progs_per_bh=progs,
            scale=scale,
            qk_scale=scale * LOG2E,
            HEAD_DIM=d,
            BLOCK_KV=cfg.block_own,
            BLOCK_Q=cfg.block_loop,
            HAS_SHIFT_TENSOR=shift_t is not None,
            INPUT_PRECISION=prec,
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )

        cfg = dq_cfg or dq_config(seg_q, seg_k, segments, window, d, fp32, arch)
        segs_per_prog, tiles_per_seg = own_tiling(seg_q, segments, cfg.block_own)
        progs = triton.cdiv(segments, segs_per_prog) * tiles_per_seg
        rsmma_bwd_kernel_dq[(b * h * progs,)](
            q,
            k,
            v,
            dout,
            lse,
            delta,
            dq,
            p_shift,
            *q.stride(),
            *k.stride(),
            *v.stride(),
            *dout.stride(),
            *dq.stride(),
            H=h,
            SEG_Q=seg_q,
            SEG_K=seg_k,
            F=segments,
            W=window,
            shift=shift_int,
            segs_per_prog=segs_per_prog,
            tiles_per_seg=tiles_per_seg,
            progs_per_bh=progs,
            scale=scale,
            qk_scale=scale * LOG2E,
            HEAD_DIM=d,
            BLOCK_Q=cfg.block_own,
            BLOCK_KV=cfg.block_loop,
            HAS_SHIFT_TENSOR=shift_t is not None,
            INPUT_PRECISION=prec,
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )
    return dq, dk, dv
