"""Fused GroupNorm -> SiLU -> dilated conv1d, forward.

y[b, o, t] = bias[o] + sum_{i < Cin, k < K} W[o, i, k] * a[b, i, t + (k - P) * d],  P = (K - 1) / 2,
a = silu((x - mean[b, g(i)]) * rstd[b, g(i)] * gamma[i] + beta[i]) (or a = x without the norm), and
a = 0 outside 0 <= t < L (the "same" zero padding pads the activation, not x).
x: [B, Cin, L], W: [Cout, Cin, K] (K odd), bias: [Cout], mean, rstd: [B, G] -> y: [B, Cout, L].

An implicit GEMM (as in the Triton matmul tutorial, with the im2col done by addressing): a program
owns a (BLOCK_L x BLOCK_OUT) tile of y^T and reduces over (Cin x taps), loading x at the dilated
offsets with masks for the padding and applying the norm and SiLU in registers, so the activation
never exists in memory. The activation is the left operand, which Hopper's wgmma can take from
registers; the weight, permuted by the launcher to [K, Cin, Cout], is the right one. Taps whose
shifted tile lies wholly outside the sequence are skipped (for d >= L only the centre tap works).
The input-gradient kernel (gn_silu_conv_bwd.py) runs the same loop over the transposed
weight with mirrored taps, so the loop is the helper `_conv_tile`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfast.kernels import device
from mmfast.kernels.gn_silu_conv_stats import gn_silu_conv_stats

DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # of x and the weight


@triton.jit
def _norm_coefs(o_c, m_c, i_b, mean, rstd, gamma, beta, G, CG):
    """fp32 [BLOCK_C] mean, rstd * gamma and beta of channels o_c of sample i_b."""
    o_g = i_b * G + o_c // CG
    b_mean = tl.load(mean + o_g, mask=m_c, other=0.0)
    b_rstd = tl.load(rstd + o_g, mask=m_c, other=0.0)
    b_gamma = tl.load(gamma + o_c, mask=m_c, other=0.0).to(tl.float32)
    b_beta = tl.load(beta + o_c, mask=m_c, other=0.0).to(tl.float32)
    return b_mean, b_rstd * b_gamma, b_beta


@triton.jit
def _norm_affine(b_x, b_mean, b_scale, b_beta):
    """z = (x - mean) * rstd * gamma + beta of a fp32 tile b_x; the coefficients broadcast to it."""
    return (b_x - b_mean) * b_scale + b_beta


@triton.jit
def _conv_tile(
    acc,
    p_in,
    p_w,
    o_out,
    m_out,
    t0,
    i_b,
    L,
    C_RED,
    C_OUT,
    dilation,
    mean,
    rstd,
    gamma,
    beta,
    G,
    CG,
    K: tl.constexpr,
    TAP_SIGN: tl.constexpr,
    HAS_NORM: tl.constexpr,
    BLOCK_RED: tl.constexpr,
    BLOCK_L: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """acc[t, o] += sum_{r, k} act(in[r, t0 + t + TAP_SIGN * (k - P) * dilation]) * w[k, r, o].

    acc: [BLOCK_L, BLOCK_OUT] fp32; p_in: one sample's input [C_RED, L] (contiguous); p_w: the
    weight as [K, C_RED, C_OUT] (contiguous); act = silu(norm(.)) with HAS_NORM, else identity;
    the input is zero outside [0, L).
    """
    P: tl.constexpr = (K - 1) // 2
    # Taps reaching back / forward in time whose shifted tile still meets [0, L): a contiguous
    # run of taps around the centre, which always does.
    n_back = tl.minimum((t0 + BLOCK_L - 1) // dilation, P)
    n_fwd = tl.minimum((L - 1 - t0) // dilation, P)
    k_lo = P - n_back if TAP_SIGN > 0 else P - n_fwd
    n_taps = n_back + n_fwd + 1
    o_l = tl.arange(0, BLOCK_L)
    o_r0 = tl.arange(0, BLOCK_RED)
    for i in range(0, tl.cdiv(C_RED, BLOCK_RED) * n_taps):
        i_r = i // n_taps
        k = k_lo + i % n_taps
        o_r = i_r * BLOCK_RED + o_r0
        m_r = o_r < C_RED
        o_t = t0 + TAP_SIGN * (k - P) * dilation + o_l
        m_t = (o_t >= 0) & (o_t < L)
        m_in = m_t[:, None] & m_r[None, :]
        b_in = tl.load(
            p_in + o_r[None, :].to(tl.int64) * L + o_t[:, None], mask=m_in, other=0.0
        )  # [BLOCK_L, BLOCK_RED]
        b_w = tl.load(
            p_w + (k * C_RED + o_r[:, None]).to(tl.int64) * C_OUT + o_out[None, :],
            mask=m_r[:, None] & m_out[None, :],
            other=0.0,
        )  # [BLOCK_RED, BLOCK_OUT]
        if HAS_NORM:
            b_mean, b_scale, b_beta = _norm_coefs(o_r, m_r, i_b, mean, rstd, gamma, beta, G, CG)
            b_z = _norm_affine(
                b_in.to(tl.float32), b_mean[None, :], b_scale[None, :], b_beta[None, :]
            )
            b_in = tl.where(m_in, b_z * tl.sigmoid(b_z), 0.0).to(b_w.dtype)
        acc = tl.dot(b_in, b_w, acc, input_precision=INPUT_PRECISION)
    return acc


# Tiles of the (time x output channel) GEMM, picked by `conv_config`; BLOCK_RED is the reduction
# channels per step. Sized for the H200 (132 SMs, 228 KB shared memory per SM) but not yet tuned
# there: the benchmarks measure them.
CONV_CONFIGS: dict[str, dict[str, int]] = {
    # L = 25600 and 6400: 128 x 128 tiles feed wgmma at full width and apply the norm + SiLU of each
    # loaded x element for 128 output channels; 3 stages of 32 KB (bf16) fit the shared memory.
    "long": dict(BLOCK_L=128, BLOCK_OUT=128, BLOCK_RED=64, num_warps=8, num_stages=3),
    # L = 1600 and 400, or too few long tiles to fill the SMs: 64 x 64 tiles give 4x the programs
    # (L = 400, C = 512: 7 x 8 = 56 per sample instead of 4 x 4 = 16).
    "short": dict(BLOCK_L=64, BLOCK_OUT=64, BLOCK_RED=64, num_warps=4, num_stages=4),
    # The CPU interpreter (tests), which pays per operation more than per element: tiles as large
    # as test shapes allow while shapes of ~100 channels and time steps still cross tile edges.
    "interpreter": dict(BLOCK_L=64, BLOCK_OUT=64, BLOCK_RED=32, num_warps=4, num_stages=1),
}


def conv_config(batch: int, length: int, c_out: int, x: torch.Tensor) -> dict[str, int]:
    """The tile config of a conv over x's device and dtype with `c_out` output channels."""
    sms = device.sms(x)
    if sms is None:
        return CONV_CONFIGS["interpreter"]
    long = CONV_CONFIGS["long"]
    n_long = batch * triton.cdiv(length, long["BLOCK_L"]) * triton.cdiv(c_out, long["BLOCK_OUT"])
    # Long tiles only when they are full (c_out > 64) and make two waves of programs.
    cfg = long if c_out > 64 and n_long >= 2 * sms else CONV_CONFIGS["short"]
    if x.dtype == torch.float32:
        # fp32 operands are twice as wide: half the channels per step keeps a stage's bytes.
        cfg = {**cfg, "BLOCK_RED": 32}
    arch = device.arch(x)
    if arch < 80:
        # The ops never launch these kernels below sm_80 (tl.dot has no tensor-core path there);
        # a direct launch gets the short tiles in one stage, within a T4's 64 KB of shared memory.
        return {**cfg, "BLOCK_L": 64, "BLOCK_OUT": 64, "num_warps": 4, "num_stages": 1}
    if arch < 90:
        # Before Hopper the dots are mma.sync, whose operand fragments sit in registers beside the
        # accumulator. ptxas for sm_80 (bf16, 128 -> 128 channels at L = 25600, one clip): the
        # short tiles with 4 stages were held to 128 registers and spilled 8 bytes (Triton 3.8);
        # with 3 stages they take 141-165 registers (Triton 3.8, 3.6) and none. The long 128 x 128
        # tiles spilled 40-48 bytes on sm_86 (bf16, fp16; Triton 3.6) and 16 on sm_80 (IEEE fp32;
        # 3.8): 128 x 64 tiles instead. fp32 short tiles on 4 warps spilled 8 bytes on sm_86
        # (TF32, 3.8): 8 warps.
        cfg = {**cfg, "num_stages": 3}
        if cfg["BLOCK_OUT"] > 64:
            cfg = {**cfg, "BLOCK_OUT": 64}
        if x.dtype == torch.float32:
            cfg = {**cfg, "num_warps": 8}
        if input_precision(x) == "ieee":
            # Exact fp32 dots run on FMA units with both operands in registers: the forward's and
            # dx's 64 x 64 tiles spilled 16-40 bytes on sm_80 (Triton 3.8) with 32 reduction
            # channels per step; 16 halve the operand fragments.
            cfg = {**cfg, "BLOCK_RED": 16}
    return cfg


def input_precision(x: torch.Tensor) -> str:
    """tl.dot's fp32 mode: TF32 where PyTorch's own convolutions may use it (cuDNN's flag), else
    IEEE fp32. 16-bit operands ignore it; they get Triton's default."""
    if x.dtype != torch.float32 or (device.sms(x) is not None and device.allow_tf32_convs()):
        return "tf32"
    return "ieee"


@triton.jit
def gn_silu_conv_fwd_kernel(
    x,
    w,
    bias,
    mean,
    rstd,
    gamma,
    beta,
    y,
    C_IN,
    C_OUT,
    L,
    G,
    CG,
    dilation,
    K: tl.constexpr,
    HAS_NORM: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_OUT: tl.constexpr,
    BLOCK_RED: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    # Output-channel tiles vary fastest: neighbouring programs share their x tile through L2.
    i_tile, i_b = tl.program_id(0), tl.program_id(1)
    n_out = tl.cdiv(C_OUT, BLOCK_OUT)
    i_o, i_l = i_tile % n_out, i_tile // n_out
    t0 = i_l * BLOCK_L
    o_o = i_o * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    m_o = o_o < C_OUT
    p_x = x + i_b.to(tl.int64) * C_IN * L
    acc = tl.zeros([BLOCK_L, BLOCK_OUT], dtype=tl.float32)
    acc = _conv_tile(
        acc,
        p_x,
        w,
        o_o,
        m_o,
        t0,
        i_b,
        L,
        C_IN,
        C_OUT,
        dilation,
        mean,
        rstd,
        gamma,
        beta,
        G,
        CG,
        K=K,
        TAP_SIGN=1,
        HAS_NORM=HAS_NORM,
        BLOCK_RED=BLOCK_RED,
        BLOCK_L=BLOCK_L,
        INPUT_PRECISION=INPUT_PRECISION,
    )  # [BLOCK_L, BLOCK_OUT]
    if HAS_BIAS:
        acc += tl.load(bias + o_o, mask=m_o, other=0.0).to(tl.float32)[None, :]
    o_t = t0 + tl.arange(0, BLOCK_L)
    p_y = y + (i_b * C_OUT + o_o[None, :]).to(tl.int64) * L + o_t[:, None]
    tl.store(p_y, acc.to(y.dtype.element_ty), mask=(o_t < L)[:, None] & m_o[None, :])


def gn_silu_conv_fwd(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    dilation: int,
    norm_weight: torch.Tensor | None = None,
    norm_bias: torch.Tensor | None = None,
    groups: int = 1,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y = conv1d(silu(group_norm(x)), weight, bias, dilation, "same" padding), or the plain conv
    of x when norm_weight is None.

    x: [B, Cin, L]; weight: [Cout, Cin, K] (K odd) in x's dtype; bias: [Cout] or None;
    norm_weight, norm_bias: [Cin] (any float dtype) or None; groups divides Cin.
    Returns (y [B, Cout, L] in x's dtype, mean [B, G] fp32, rstd [B, G] fp32); mean and rstd are
    [B, 0] without the norm. The backward launcher takes them back.
    """
    b, c_in, length = x.shape
    c_out, c_in_w, k = weight.shape
    if c_in_w != c_in or k % 2 == 0 or weight.dtype != x.dtype:
        raise ValueError(
            f"weight must be [Cout, Cin={c_in}, odd K] in {x.dtype}, got {tuple(weight.shape)} "
            f"{weight.dtype}"
        )
    x = x.contiguous()
    has_norm = norm_weight is not None
    if has_norm:
        mean, rstd = gn_silu_conv_stats(x, groups, eps)
    else:
        mean = torch.empty(b, 0, device=x.device, dtype=torch.float32)
        rstd = torch.empty(b, 0, device=x.device, dtype=torch.float32)
    y = torch.empty(b, c_out, length, device=x.device, dtype=x.dtype)
    if y.numel() == 0:
        return y, mean, rstd
    w = weight.permute(2, 1, 0).contiguous()  # [K, Cin, Cout]: contiguous rows of output channels
    cfg = conv_config(b, length, c_out, x)
    grid = (triton.cdiv(c_out, cfg["BLOCK_OUT"]) * triton.cdiv(length, cfg["BLOCK_L"]), b)
    with device.on_device(x):
        gn_silu_conv_fwd_kernel[grid](
            x,
            w,
            bias if bias is not None else y,  # unused pointers get y
            mean if has_norm else y,
            rstd if has_norm else y,
            norm_weight if has_norm else y,
            norm_bias if has_norm else y,
            y,
            c_in,
            c_out,
            length,
            groups if has_norm else 1,
            c_in // groups if has_norm else c_in,
            dilation,
            K=k,
            HAS_NORM=has_norm,
            HAS_BIAS=bias is not None,
            INPUT_PRECISION=input_precision(x),
            **cfg,
        )
    return y, mean, rstd
