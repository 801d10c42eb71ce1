"""Building blocks of the coupled U-Net: norms, convolutions, resampling, time embedding.

Video is kept as [B, C, F, H, W] inside the model, so that the release's per-frame 2-D conv and
per-pixel 1-D temporal conv are Conv3d kernels (1,3,3) and (3,1,1) with no permute copies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in fp32 and cast back to the input dtype (as the release does).

    For video [B, C, F, H, W] the statistics cover (C/groups x F x H x W): all frames of a clip
    share them.
    """

    def forward(self, x: Tensor) -> Tensor:
        # The affine parameters join the fp32 computation too: a model cast whole to bf16/fp16
        # (`model.to(torch.bfloat16)`) keeps them in that dtype, and group_norm wants one dtype.
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def video_group_norm(x: Tensor, norm: nn.GroupNorm, per: str) -> Tensor:
    """GroupNorm of video [B, C, F, H, W] with statistics per frame or per pixel, in fp32.

    per="frame": over (C/groups x H x W) for each frame (the spatial attention's norm);
    per="pixel": over (C/groups x F) for each pixel (the temporal attention's norm).
    Returns [B, C, F, H, W] in x's dtype.
    """
    b, c, f, h, w = x.shape
    g = norm.num_groups
    xg = x.float().view(b, g, c // g, f, h * w)
    dims = {"frame": (2, 4), "pixel": (2, 3)}[per]
    var, mean = torch.var_mean(xg, dim=dims, keepdim=True, correction=0)
    y = ((xg - mean) * torch.rsqrt(var + norm.eps)).view(b, c, f, h, w)
    y = y * norm.weight.float().view(1, c, 1, 1, 1) + norm.bias.float().view(1, c, 1, 1, 1)
    return y.to(x.dtype)


class VideoConv2p1d(nn.Module):
    """The release's "2d+1d" video conv: a k x k conv on each frame, then a k conv over frames for
    each pixel (no nonlinearity between), "same" zero padding. [B, Cin, F, H, W] -> [B, Cout, F, H, W].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        p = kernel_size // 2
        self.spatial = nn.Conv3d(
            in_channels, out_channels, (1, kernel_size, kernel_size), padding=(0, p, p)
        )
        self.temporal = nn.Conv3d(
            out_channels, out_channels, (kernel_size, 1, 1), padding=(p, 0, 0)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.temporal(self.spatial(x))


def dilated_conv1d(
    in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1
) -> nn.Conv1d:
    """Conv1d with "same" zero padding: [B, Cin, L] -> [B, Cout, L]."""
    return nn.Conv1d(
        in_channels,
        out_channels,
        kernel_size,
        padding=dilation * (kernel_size - 1) // 2,
        dilation=dilation,
    )


def downsample_video(x: Tensor) -> Tensor:
    """2x2 average pool over H, W of [B, C, F, H, W] (frames untouched).

    As a 2-D pool of [B, C*F, H, W] (the same sums): the CPU has no bf16/fp16 avg_pool3d.
    """
    b, c, f, h, w = x.shape
    return F.avg_pool2d(x.reshape(b, c * f, h, w), 2).view(b, c, f, h // 2, w // 2)


def upsample_video(x: Tensor) -> Tensor:
    """Nearest x2 over H, W of [B, C, F, H, W]."""
    return F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")


def downsample_audio(x: Tensor) -> Tensor:
    """Average pool by 4 of [B, C, L]."""
    return F.avg_pool1d(x, kernel_size=4)


def upsample_audio(x: Tensor) -> Tensor:
    """Nearest x4 of [B, C, L]."""
    return F.interpolate(x, scale_factor=4, mode="nearest")


def timestep_embedding(
    timesteps: Tensor, dim: int, max_period: float = 10000.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps [B] -> [B, dim], cos half first,
    computed in fp32 and returned in `dtype` (the time MLP's dtype)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=timesteps.device)
        / half
    )
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb.to(dtype)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero the parameters of `module` (the release zero-initialises every residual output)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module
