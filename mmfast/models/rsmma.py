"""RS-MMA: random-shift multi-modal attention, the block that couples the two U-Nets."""

from __future__ import annotations

from torch import Tensor, nn

from mmfast.models.layers import GroupNorm32, zero_init
from mmfast.ops import Shift, rsmma_attention


class CrossModalAttention(nn.Module):
    """Video frame i attends to audio segments (i+R .. i+R+S-1) mod F and audio segment j to video
    frames (j+R .. j+R+S-1) mod F, both with the same shift R; outputs go through zero-initialised
    projections and are added to the inputs. `window=None` means all F frames (the middle block).

    video: [B, C, F, H, W], audio: [B, C, L] with L a multiple of F -> the same shapes.
    """

    def __init__(
        self,
        channels: int,
        window: int | None,
        head_channels: int,
        groups: int,
        backend: str = "auto",
    ):
        super().__init__()
        if channels % head_channels:
            raise ValueError(f"channels {channels} are not divisible by head width {head_channels}")
        self.window = window
        self.heads = channels // head_channels
        self.backend = backend
        self.video_norm = GroupNorm32(groups, channels)
        self.audio_norm = GroupNorm32(groups, channels)
        self.video_qkv = nn.Linear(channels, 3 * channels)
        self.audio_qkv = nn.Linear(channels, 3 * channels)
        self.video_proj = zero_init(nn.Linear(channels, channels))
        self.audio_proj = zero_init(nn.Linear(channels, channels))

    def _heads(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[B, T, 3C] -> q, k, v each [B, heads, T, C/heads]."""
        b, t, c3 = qkv.shape
        q, k, v = qkv.view(b, t, 3, self.heads, c3 // (3 * self.heads)).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, video: Tensor, audio: Tensor, shift: Shift) -> tuple[Tensor, Tensor]:
        b, c, f, h, w = video.shape
        length = audio.shape[-1]
        v_tokens = self.video_norm(video).flatten(2).transpose(1, 2)  # [B, F*H*W, C]
        a_tokens = self.audio_norm(audio).transpose(1, 2)  # [B, L, C]
        vq, vk, vv = self._heads(self.video_qkv(v_tokens))
        aq, ak, av = self._heads(self.audio_qkv(a_tokens))
        window = f if self.window is None else self.window
        v_out = rsmma_attention(vq, ak, av, f, window, shift, backend=self.backend)
        a_out = rsmma_attention(aq, vk, vv, f, window, shift, backend=self.backend)
        v_out = self.video_proj(v_out.transpose(1, 2).reshape(b, f * h * w, c))
        a_out = self.audio_proj(a_out.transpose(1, 2).reshape(b, length, c))
        video = video + v_out.transpose(1, 2).view(b, c, f, h, w)
        audio = audio + a_out.transpose(1, 2)
        return video, audio
