"""Fused GroupNorm -> SiLU -> dilated conv1d, backward.

With z = (x - mean) * rstd * gamma + beta, a = silu(z), y = conv(a, W) + bias (see
gn_silu_conv_fwd.py) and dy: [B, Cout, L]:
- da[b, i, s] = sum_{o, k} W[o, i, k] * dy[b, o, s - (k - P) * d]: the transposed dilated conv, the
  forward loop over the weight as [K, Cout, Cin] with mirrored taps (`dx` kernel). Without the
  norm, dx = da. With it, the epilogue recomputes z from x and writes dz = da * silu'(z) (fp32)
  and per-tile sums over time of dz and dz * xhat (xhat = (x - mean) * rstd).
- dgamma = sum_{b,t} dz * xhat, dbeta = sum_{b,t} dz; and the GroupNorm statistics' share:
  dx = rstd * (gamma * dz - c1 - xhat * c2), with c1 = mean over the group of gamma * dz and
  c2 = the same of gamma * dz * xhat (`dx_norm` kernel; c1, c2 come from the per-tile sums).
- dW[o, i, k] = sum_{b, t} dy[b, o, t] * a[b, i, t + (k - P) * d] with a recomputed from x on the
  fly, dbias = sum_{b, t} dy (`dw` kernel): a GEMM whose reduction runs over (batch x time), split
  into chunks whose fp32 partial sums the launcher adds (no atomics: deterministic).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfast.kernels import device
from mmfast.kernels.gn_silu_conv_fwd import (
    _conv_tile,
    _norm_affine,
    _norm_coefs,
    conv_config,
    input_precision,
)

# Tiles of the weight-gradient GEMM [Cin x Cout] reduced over time, picked by `dw_config`.
DW_CONFIGS: dict[str, dict[str, int]] = {
    # GPU: 64 x 128 weight tiles (C = 128 gives 2 x 1 x K tiles, so the time reduction is split to
    # fill the SMs) with 64 time steps per step. ptxas for sm_90 (Triton 3.6 and 3.8, bf16, fp16,
    # fp32 with TF32 or IEEE dots, 128 -> 128 channels at L = 25600): 182-254 registers and no
    # spills on 8 warps, where 64 x 64 x 128 tiles spilled 88-616 bytes on 4 warps and up to 168
    # bytes on 8 (the norm and SiLU recomputed on the [Cin, time] operand hold it in registers).
    "gpu": dict(BLOCK_IN=64, BLOCK_OUT=128, BLOCK_L=64, num_warps=8, num_stages=3),
    # The CPU interpreter (tests): as large as test shapes of ~100 channels and time steps allow
    # while still crossing tile edges on every axis.
    "interpreter": dict(BLOCK_IN=32, BLOCK_OUT=64, BLOCK_L=64, num_warps=4, num_stages=1),
}
# The elementwise GroupNorm-backward pass over [B, Cin, L].
NORM_CONFIG: dict[str, int] = dict(BLOCK_C=16, BLOCK_L=256, num_warps=4)


def dw_config(x: torch.Tensor) -> dict[str, int]:
    """The weight-gradient tile config for x's device."""
    if device.sms(x) is None:
        return DW_CONFIGS["interpreter"]
    arch = device.arch(x)
    if arch < 80:  # as `conv_config`: one stage below sm_80
        return {**DW_CONFIGS["gpu"], "num_stages": 1}
    if arch < 90:
        # mma.sync before Hopper: ptxas for sm_80 spilled the 64 x 128 tiles by 184-280 bytes
        # (IEEE fp32 dots, Triton 3.8); 64 x 64 weight tiles instead. Those still spilled 16-48
        # bytes with IEEE fp32 (FMA dots hold both operands in registers: Triton 3.8 on sm_80,
        # 3.6 on sm_86/89): 32 time steps per step there.
        cfg = {**DW_CONFIGS["gpu"], "BLOCK_OUT": 64}
        if input_precision(x) == "ieee":
            cfg["BLOCK_L"] = 32
        return cfg
    return DW_CONFIGS["gpu"]


def dx_config(batch: int, length: int, c_in: int, x: torch.Tensor) -> dict[str, int]:
    """The input-gradient kernel's tiles: the forward's choice (`conv_config`) with its long tiles
    half as wide. Its epilogue recomputes the norm and SiLU over the whole [BLOCK_L, BLOCK_OUT]
    fp32 tile: ptxas for sm_90 spilled 128 x 128 tiles on 8 warps (255 registers, 8-712 bytes of
    stack under Triton 3.6 and 3.8, every dtype) and allocates 128 x 64 ones in 128-186 registers
    without spills."""
    cfg = conv_config(batch, length, c_in, x)
    if device.sms(x) is not None and cfg["BLOCK_OUT"] > 64:
        cfg = {**cfg, "BLOCK_OUT": 64}
    return cfg


@triton.jit
def gn_silu_conv_bwd_kernel_dx(
    dy,
    w,
    x,
    mean,
    rstd,
    gamma,
    beta,
    dx,
    sum_dz,
    sum_dz_xhat,
    C_IN,
    C_OUT,
    L,
    G,
    CG,
    dilation,
    K: tl.constexpr,
    HAS_NORM: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_OUT: tl.constexpr,
    BLOCK_RED: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    # Here the "output" channels are the conv's inputs (Cin) and the reduction runs over Cout.
    i_tile, i_b = tl.program_id(0), tl.program_id(1)
    n_in = tl.cdiv(C_IN, BLOCK_OUT)
    i_i, i_l = i_tile % n_in, i_tile // n_in
    t0 = i_l * BLOCK_L
    o_i = i_i * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    m_i = o_i < C_IN
    p_dy = dy + i_b.to(tl.int64) * C_OUT * L
    acc = tl.zeros([BLOCK_L, BLOCK_OUT], dtype=tl.float32)
    acc = _conv_tile(
        acc,
        p_dy,
        w,
        o_i,
        m_i,
        t0,
        i_b,
        L,
        C_OUT,
        C_IN,
        dilation,
        mean,
        rstd,
        gamma,
        beta,
        G,
        CG,
        K=K,
        TAP_SIGN=-1,
        HAS_NORM=False,
        BLOCK_RED=BLOCK_RED,
        BLOCK_L=BLOCK_L,
        INPUT_PRECISION=INPUT_PRECISION,
    )  # da: [BLOCK_L, BLOCK_OUT]
    o_t = t0 + tl.arange(0, BLOCK_L)
    m = (o_t < L)[:, None] & m_i[None, :]
    o_x = (i_b * C_IN + o_i[None, :]).to(tl.int64) * L + o_t[:, None]
    if HAS_NORM:
        b_x = tl.load(x + o_x, mask=m, other=0.0).to(tl.float32)  # [BLOCK_L, BLOCK_OUT]
        b_mean, b_scale, b_beta = _norm_coefs(o_i, m_i, i_b, mean, rstd, gamma, beta, G, CG)
        b_z = _norm_affine(b_x, b_mean[None, :], b_scale[None, :], b_beta[None, :])
        b_sig = tl.sigmoid(b_z)
        b_dz = tl.where(m, acc * b_sig * (1.0 + b_z * (1.0 - b_sig)), 0.0)
        o_g = i_b * G + o_i // CG
        b_rstd = tl.load(rstd + o_g, mask=m_i, other=0.0)
        b_xhat = (b_x - b_mean[None, :]) * b_rstd[None, :]
        tl.store(dx + o_x, b_dz, mask=m)
        # Per-tile sums over time, [B, Cin, n_l]; the launcher adds the tiles.
        n_l = tl.cdiv(L, BLOCK_L)
        o_s = (i_b * C_IN + o_i).to(tl.int64) * n_l + i_l
        tl.store(sum_dz + o_s, tl.sum(b_dz, 0), mask=m_i)
        tl.store(sum_dz_xhat + o_s, tl.sum(b_dz * b_xhat, 0), mask=m_i)
    else:
        tl.store(dx + o_x, acc.to(dx.dtype.element_ty), mask=m)


@triton.jit
def gn_silu_conv_bwd_kernel_dx_norm(
    dz,
    x,
    mean,
    rstd,
    gamma,
    c1,
    c2,
    dx,
    C,
    L,
    G,
    CG,
    BLOCK_C: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    """dx = rstd * (gamma * dz - c1 - xhat * c2) over a [BLOCK_C, BLOCK_L] tile (dz may be dx)."""
    i_l, i_c, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_c = i_c * BLOCK_C + tl.arange(0, BLOCK_C)
    m_c = o_c < C
    o_t = i_l * BLOCK_L + tl.arange(0, BLOCK_L)
    m = m_c[:, None] & (o_t < L)[None, :]
    o_g = i_b * G + o_c // CG
    b_mean = tl.load(mean + o_g, mask=m_c, other=0.0)[:, None]
    b_rstd = tl.load(rstd + o_g, mask=m_c, other=0.0)[:, None]
    b_c1 = tl.load(c1 + o_g, mask=m_c, other=0.0)[:, None]
    b_c2 = tl.load(c2 + o_g, mask=m_c, other=0.0)[:, None]
    b_gamma = tl.load(gamma + o_c, mask=m_c, other=0.0).to(tl.float32)[:, None]
    o_x = (i_b * C + o_c[:, None]).to(tl.int64) * L + o_t[None, :]
    b_dz = tl.load(dz + o_x, mask=m, other=0.0)  # [BLOCK_C, BLOCK_L]
    b_xhat = (tl.load(x + o_x, mask=m, other=0.0).to(tl.float32) - b_mean) * b_rstd
    b_dx = b_rstd * (b_gamma * b_dz - b_c1 - b_xhat * b_c2)
    tl.store(dx + o_x, b_dx.to(dx.dtype.element_ty), mask=m)


@triton.jit
def gn_silu_conv_bwd_kernel_dw(
    dy,
    x,
    mean,
    rstd,
    gamma,
    beta,
    dw,
    dbias,
    C_IN,
    C_OUT,
    L,
    G,
    CG,
    dilation,
    UNITS,
    UNITS_PER_SPLIT,
    K: tl.constexpr,
    HAS_NORM: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_IN: tl.constexpr,
    BLOCK_OUT: tl.constexpr,
    BLOCK_L: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """dw[s, o, i, k] = sum over split s's (sample, time tile) units of dy[b, o, t] * a[b, i, t + off]
    and dbias[s, o] = the same of dy; dw: [S, Cout, Cin, K], dbias: [S, Cout] fp32."""
    P: tl.constexpr = (K - 1) // 2
    i_tile, i_k, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_in = tl.cdiv(C_IN, BLOCK_IN)
    i_i, i_o = i_tile % n_in, i_tile // n_in
    o_i = i_i * BLOCK_IN + tl.arange(0, BLOCK_IN)
    m_i = o_i < C_IN
    o_o = i_o * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    m_o = o_o < C_OUT
    o_l = tl.arange(0, BLOCK_L)
    off = (i_k - P) * dilation
    n_l = tl.cdiv(L, BLOCK_L)
    # One program per output-channel tile also sums dy for the bias.
    do_bias = HAS_BIAS & (i_k == P) & (i_i == 0)
    acc = tl.zeros([BLOCK_IN, BLOCK_OUT], dtype=tl.float32)
    acc_b = tl.zeros([BLOCK_OUT], dtype=tl.float32)
    u_end = tl.minimum((i_s + 1) * UNITS_PER_SPLIT, UNITS)
    for u in range(i_s * UNITS_PER_SPLIT, u_end):
        i_b = u // n_l
        t0 = (u % n_l) * BLOCK_L
        o_t = t0 + o_l
        b_dy = tl.load(
            dy + (i_b * C_OUT + o_o[None, :]).to(tl.int64) * L + o_t[:, None],
            mask=(o_t < L)[:, None] & m_o[None, :],
            other=0.0,
        )  # [BLOCK_L, BLOCK_OUT]
        if do_bias:
            acc_b += tl.sum(b_dy.to(tl.float32), 0)
        # Skip the tap when its shifted tile lies wholly in the padding (d >= L, say).
        if (t0 + off < L) & (t0 + off + BLOCK_L > 0):
            o_ts = o_t + off
            m_in = m_i[:, None] & ((o_ts >= 0) & (o_ts < L))[None, :]
            b_a = tl.load(
                x + (i_b * C_IN + o_i[:, None]).to(tl.int64) * L + o_ts[None, :],
                mask=m_in,
                other=0.0,
            )  # [BLOCK_IN, BLOCK_L]
            if HAS_NORM:
                b_mean, b_scale, b_beta = _norm_coefs(o_i, m_i, i_b, mean, rstd, gamma, beta, G, CG)
                b_z = _norm_affine(
                    b_a.to(tl.float32), b_mean[:, None], b_scale[:, None], b_beta[:, None]
                )
                b_a = tl.where(m_in, b_z * tl.sigmoid(b_z), 0.0).to(b_dy.dtype)
            acc = tl.dot(b_a, b_dy, acc, input_precision=INPUT_PRECISION)
    o_w = (i_s * C_OUT + o_o[None, :]).to(tl.int64) * (C_IN * K) + o_i[:, None] * K + i_k
    tl.store(dw + o_w, acc, mask=m_i[:, None] & m_o[None, :])
    if do_bias:
        tl.store(dbias + i_s * C_OUT + o_o, acc_b, mask=m_o)


def gn_silu_conv_bwd(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    dilation: int,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    norm_weight: torch.Tensor | None = None,
    norm_bias: torch.Tensor | None = None,
    groups: int = 1,
    has_bias: bool = True,
    need_input_grads: bool = True,
    need_weight_grads: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of `gn_silu_conv_fwd`.

    dy: [B, Cout, L] and x: [B, Cin, L] in one dtype; weight: [Cout, Cin, K]; mean, rstd: [B, G]
    fp32 from the forward launcher; norm_weight, norm_bias: [Cin] or None (no norm).
    Returns (dx [B, Cin, L] in x's dtype, dnorm_weight, dnorm_bias [Cin] in norm_weight's dtype,
    dweight [Cout, Cin, K], dbias [Cout] in weight's dtype). The input side (dx and the norm's
    gradients) is computed only with `need_input_grads`, the weight side (dweight, dbias) only with
    `need_weight_grads`; what is not computed, and the norm's and bias's gradients when they do not
    exist, come back as empty [0] tensors.
    """
    b, c_in, length = x.shape
    c_out, _, k = weight.shape
    if dy.shape != (b, c_out, length) or dy.dtype != x.dtype:
        raise ValueError(
            f"dy must be [{b}, {c_out}, {length}] in {x.dtype}, got {tuple(dy.shape)} {dy.dtype}"
        )
    dy, x = dy.contiguous(), x.contiguous()
    has_norm = norm_weight is not None
    dev = x.device

    def nothing(dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(0, device=dev, dtype=dtype)

    dx, dw, db = nothing(x.dtype), nothing(weight.dtype), nothing(weight.dtype)
    norm_dtype = norm_weight.dtype if has_norm else torch.float32
    dnw, dnb = nothing(norm_dtype), nothing(norm_dtype)
    with device.on_device(x):
        if need_input_grads:
            dx, dnw, dnb = _input_grads(
                dy, x, weight, dilation, mean, rstd, norm_weight, norm_bias, groups
            )
        if need_weight_grads:
            dw, db = _weight_grads(
                dy, x, weight, dilation, mean, rstd, norm_weight, norm_bias, groups, has_bias
            )
    return dx, dnw, dnb, dw, db


def _input_grads(dy, x, weight, dilation, mean, rstd, norm_weight, norm_bias, groups):
    """(dx, dnorm_weight, dnorm_bias); the norm's gradients are empty without the norm."""
    b, c_in, length = x.shape
    c_out, _, k = weight.shape
    has_norm = norm_weight is not None
    f32 = dict(device=x.device, dtype=torch.float32)
    if not has_norm:
        dx = torch.empty_like(x)
        dnw, dnb = torch.empty(0, **f32), torch.empty(0, **f32)
    else:
        # dz in fp32; for fp32 x it is written into dx, which the dx_norm pass then updates in place.
        dx = torch.empty(b, c_in, length, **f32) if x.dtype == torch.float32 else None
        dz = dx if dx is not None else torch.empty(b, c_in, length, **f32)
        dnw = torch.zeros(c_in, device=x.device, dtype=norm_weight.dtype)
        dnb = torch.zeros(c_in, device=x.device, dtype=norm_weight.dtype)
    if x.numel() == 0:
        return (dx if dx is not None else torch.empty_like(x)), dnw, dnb
    cfg = dx_config(b, length, c_in, x)
    n_l = triton.cdiv(length, cfg["BLOCK_L"])
    sums = torch.empty(2, b, c_in, n_l, **f32) if has_norm else None
    w_t = weight.permute(2, 0, 1).contiguous()  # [K, Cout, Cin]: contiguous rows of input channels
    grid = (triton.cdiv(c_in, cfg["BLOCK_OUT"]) * n_l, b)
    gn_silu_conv_bwd_kernel_dx[grid](
        dy,
        w_t,
        x,
        mean if has_norm else x,  # unused pointers get x
        rstd if has_norm else x,
        norm_weight if has_norm else x,
        norm_bias if has_norm else x,
        dz if has_norm else dx,
        sums[0] if has_norm else x,
        sums[1] if has_norm else x,
        c_in,
        c_out,
        length,
        groups if has_norm else 1,
        c_in // groups if has_norm else c_in,
        dilation,
        K=k,
        HAS_NORM=has_norm,
        INPUT_PRECISION=input_precision(x),
        **cfg,
    )
    if not has_norm:
        return dx, dnw, dnb
    s_dz, s_dz_xhat = sums.sum(-1)  # [B, Cin] each
    dnb, dnw = s_dz.sum(0).to(norm_weight.dtype), s_dz_xhat.sum(0).to(norm_weight.dtype)
    gamma = norm_weight.float()
    n = (c_in // groups) * length
    c1 = (gamma * s_dz).view(b, groups, -1).sum(-1) / n  # [B, G]
    c2 = (gamma * s_dz_xhat).view(b, groups, -1).sum(-1) / n
    if dx is None:
        dx = torch.empty_like(x)
    grid = (
        triton.cdiv(length, NORM_CONFIG["BLOCK_L"]),
        triton.cdiv(c_in, NORM_CONFIG["BLOCK_C"]),
        b,
    )
    gn_silu_conv_bwd_kernel_dx_norm[grid](
        dz,
        x,
        mean,
        rstd,
        norm_weight,
        c1,
        c2,
        dx,
        c_in,
        length,
        groups,
        c_in // groups,
        **NORM_CONFIG,
    )
    return dx, dnw, dnb


def _weight_grads(dy, x, weight, dilation, mean, rstd, norm_weight, norm_bias, groups, has_bias):
    """(dweight [Cout, Cin, K], dbias [Cout], or [0] without a bias) in weight's dtype."""
    b, c_in, length = x.shape
    c_out, _, k = weight.shape
    has_norm = norm_weight is not None
    cfg = dw_config(x)
    n_l = triton.cdiv(length, cfg["BLOCK_L"])
    units = b * n_l  # (sample, time tile) pairs to reduce over
    n_tiles = triton.cdiv(c_in, cfg["BLOCK_IN"]) * triton.cdiv(c_out, cfg["BLOCK_OUT"])
    # Split the reduction until there are about two programs per SM; each split adds a
    # [Cout, Cin, K] fp32 partial. The interpreter always splits in two, to test the split path.
    sms = device.sms(x)
    splits = 2 if sms is None else triton.cdiv(2 * sms, n_tiles * k)
    splits = max(1, min(units, splits))
    per_split = triton.cdiv(units, splits)
    splits = triton.cdiv(units, per_split) if units else 1
    f32 = dict(device=x.device, dtype=torch.float32)
    dw = torch.empty(splits, c_out, c_in, k, **f32)
    db = torch.empty(splits, c_out if has_bias else 0, **f32)
    if units == 0:
        dw.zero_()
        db.zero_()
    else:
        gn_silu_conv_bwd_kernel_dw[(n_tiles, k, splits)](
            dy,
            x,
            mean if has_norm else x,  # unused pointers get x
            rstd if has_norm else x,
            norm_weight if has_norm else x,
            norm_bias if has_norm else x,
            dw,
            db if has_bias else dw,
            c_in,
            c_out,
            length,
            groups if has_norm else 1,
            c_in // groups if has_norm else c_in,
            dilation,
            units,
            per_split,
            K=k,
            HAS_NORM=has_norm,
            HAS_BIAS=has_bias,
            INPUT_PRECISION=input_precision(x),
            **cfg,
        )
    return dw.sum(0).to(weight.dtype), db.sum(0).to(weight.dtype)
