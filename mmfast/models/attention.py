"""Single-modality self-attention of the coupled U-Net: video (spatial, then temporal) and audio.

Each attention is GroupNorm -> 1x1 projection to q|k|v (heads are contiguous channel blocks, as in
the release) -> softmax(q k^T / sqrt(d)) v through `scaled_dot_product_attention` -> zero-initialised
1x1 projection -> residual.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mmfast.models.layers import GroupNorm32, video_group_norm, zero_init


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens: norm parameters, qkv and output projections."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} are not divisible by {heads} heads")
        self.heads = heads
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_init(nn.Linear(channels, channels))

    def attend(self, tokens: Tensor) -> Tensor:
        """tokens: [N, T, C] (already normalised) -> [N, T, C], before the residual."""
        n, t, c = tokens.shape
        qkv = self.qkv(tokens).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # [N, heads, T, d]
        return self.proj(out.transpose(1, 2).reshape(n, t, c))


class VideoSelfAttention(nn.Module):
    """Spatial attention over the H*W tokens of each frame, then temporal attention over the F
    tokens of each pixel. [B, C, F, H, W] -> [B, C, F, H, W]."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.spatial = SelfAttention(channels, heads, groups)
        self.temporal = SelfAttention(channels, heads, groups)

    def forward(self, x: Tensor) -> Tensor:
        b, c, f, h, w = x.shape
        tokens = video_group_norm(x, self.spatial.norm, "frame").permute(0, 2, 3, 4, 1)
        out = self.spatial.attend(tokens.reshape(b * f, h * w, c))
        x = x + out.view(b, f, h, w, c).permute(0, 4, 1, 2, 3)
        tokens = video_group_norm(x, self.temporal.norm, "pixel").permute(0, 3, 4, 2, 1)
        out = self.temporal.attend(tokens.reshape(b * h * w, f, c))
        return x + out.view(b, h, w, f, c).permute(0, 4, 3, 1, 2)


class AudioSelfAttention(SelfAttention):
    """Self-attention over the L samples of audio [B, C, L] -> [B, C, L]."""

    def forward(self, x: Tensor) -> Tensor:
        out = self.attend(self.norm(x).transpose(1, 2))
        return x + out.transpose(1, 2)
