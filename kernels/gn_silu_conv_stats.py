"""GroupNorm statistics: mean[b, g] and rstd[b, g] = 1 / sqrt(var[b, g] + eps) in fp32.

x: [B, C, L] contiguous, G groups of C/G channels -> mean, rstd: [B, G] fp32, with the biased
variance over the group's (C/G x L) elements (as `F.group_norm`). A group of a contiguous x is one
contiguous run of C/G * L elements; one program reduces it, shifted by its first element, with a
per-lane Welford update and Chan et al.'s combine across lanes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mmfast.kernels import device


@triton.jit
def gn_silu_conv_stats_kernel(x, mean, rstd, N, eps, BLOCK: tl.constexpr):
    i_bg = tl.program_id(0)
    p_x = x + i_bg.to(tl.int64) * N
    o_n = tl.arange(0, BLOCK)
    b_mean = tl.zeros([BLOCK], dtype=tl.float32)
    b_m2 = tl.zeros([BLOCK], dtype=tl.float32)
    b_n = tl.zeros([BLOCK], dtype=tl.float32)
    # Shifting by the group's first element keeps the running means small, so a mean much
    # larger than the spread loses no digits.
    pivot = tl.load(p_x).to(tl.float32)
    for start in range(0, N, BLOCK):
        m_n = start + o_n < N
        b_x = tl.load(p_x + start + o_n, mask=m_n, other=0.0).to(tl.float32) - pivot  # [BLOCK]
        b_n_new = b_n + m_n.to(tl.float32)
        b_delta = b_x - b_mean
        b_mean = b_mean + tl.where(m_n, b_delta / tl.maximum(b_n_new, 1.0), 0.0)
        b_m2 = b_m2 + tl.where(m_n, b_delta * (b_x - b_mean), 0.0)
        b_n = b_n_new
    # Chan's combine of the lanes' (count, mean, M2), as sums.
    g_n = tl.sum(b_n, 0)
    g_mean = tl.sum(b_n * b_mean, 0) / g_n
    g_m2 = tl.sum(b_m2, 0) + tl.sum(b_n * (b_mean - g_mean) * (b_mean - g_mean), 0)
    tl.store(mean + i_bg, g_mean + pivot)
    tl.store(rstd + i_bg, tl.math.rsqrt(g_m2 / g_n + eps))


def gn_silu_conv_stats(
    x: torch.Tensor, groups: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """mean, rstd: [B, G] fp32 of x: [B, C, L] (any float dtype, contiguous, C % G == 0); NaN
    where L = 0."""
    b, c, length = x.shape
    if not x.is_contiguous():
        raise ValueError("gn_silu_conv_stats needs a contiguous x")
    if c % groups:
        raise ValueError(f"groups={groups} must divide the {c} channels")
    mean = torch.empty(b, groups, device=x.device, dtype=torch.float32)
    rstd = torch.empty(b, groups, device=x.device, dtype=torch.float32)
    n = (c // groups) * length
    if n == 0 or b == 0:
        # No elements, no statistics (as F.group_norm's NaN); and the kernel's first read would
        # lie past an empty group.
        return mean.fill_(float("nan")), rstd.fill_(float("nan"))
    # GPU: 2048 lanes over 8 warps, 16 B per thread per load. The CPU interpreter pays per
    # operation, not per lane: 4096 lanes make one step for most test groups.
    block = 4096 if device.sms(x) is None else 2048
    with device.on_device(x):
        gn_silu_conv_stats_kernel[(b * groups,)](x, mean, rstd, n, eps, BLOCK=block, num_warps=8)
    return mean, rstd
