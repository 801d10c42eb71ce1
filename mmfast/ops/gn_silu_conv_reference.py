"""Plain-PyTorch references of the audio path's convolutions, shared by tests and benchmarks.

They are also the `torch` backend of `mmfast.ops.gn_silu_conv1d` and
`mmfast.ops.gn_silu_conv1d`: the same calls the coupled U-Net made before the fused
kernel existed (GroupNorm32, SiLU, nn.Conv1d), so that backend is numerically the release's path.
They validate nothing (the public entry points do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gn_silu_conv1d_plain_reference(
    x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int
) -> Tensor:
    """Conv1d with "same" zero padding. x: [B, Cin, L], weight: [Cout, Cin, K] (K odd),
    bias: [Cout] or None -> [B, Cout, L]."""
    padding = dilation * (weight.shape[-1] - 1) // 2
    return F.conv1d(x, weight, bias, padding=padding, dilation=dilation)


def gn_silu_conv1d_reference(
    x: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    groups: int,
    weight: Tensor,
    bias: Tensor | None,
    dilation: int,
    eps: float,
) -> Tensor:
    """gn_silu_conv1d_plain_reference(silu(group_norm(x))), the norm in fp32 (fp64 for fp64 x) and cast
    back to x's dtype, as the release's GroupNorm32. x: [B, Cin, L], norm_weight, norm_bias: [Cin]
    -> [B, Cout, L]."""
    x_norm = x.to(torch.promote_types(x.dtype, torch.float32))
    w, b = norm_weight.to(x_norm.dtype), norm_bias.to(x_norm.dtype)
    a = F.silu(F.group_norm(x_norm, groups, w, b, eps).to(x.dtype))
    return gn_silu_conv1d_plain_reference(a, weight, bias, dilation)
