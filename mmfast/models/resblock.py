"""The coupled residual block: one video and one audio residual path sharing a time embedding."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mmfast.models.attention import AudioSelfAttention, VideoSelfAttention
from mmfast.models.layers import (
    GroupNorm32,
    VideoConv2p1d,
    dilated_conv1d,
    downsample_audio,
    downsample_video,
    upsample_audio,
    upsample_video,
    zero_init,
)
from mmfast.ops import gn_silu_conv1d

_RESAMPLE = {
    "down": (downsample_video, downsample_audio),
    "up": (upsample_video, upsample_audio),
}


class ResBlock(nn.Module):
    """video [B, Cin, F, H, W], audio [B, Cin, L], emb [B, E] -> [B, Cout, F, H', W'], [B, Cout, L'].

    Video: GN -> SiLU -> 2d+1d conv; audio: GN -> SiLU -> dilated conv1d, one fused op whose
    backend is `conv_backend` ("auto", "torch", "triton"); then optional resampling
    of both the branch and the skip input (`resample` "down": H/2, W/2, L/4; "up": x2, x4), FiLM
    from the time embedding (GN(h) * (1 + scale) + shift), SiLU, dropout, zero-initialised
    pointwise conv, residual; then optional self-attention.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        *,
        dilation: int,
        groups: int,
        dropout: float = 0.0,
        resample: str | None = None,
        video_attention_heads: int | None = None,
        audio_attention_heads: int | None = None,
    ):
        super().__init__()
        if resample not in (None, "up", "down"):
            raise ValueError(f"resample must be None, 'up' or 'down', got {resample!r}")
        self.resample = resample
        self.dilation = dilation
        self.conv_backend = "auto"
        self.video_in_norm = GroupNorm32(groups, in_channels)
        self.video_in_conv = VideoConv2p1d(in_channels, out_channels, 3)
        self.audio_in_norm = GroupNorm32(groups, in_channels)
        self.audio_in_conv = dilated_conv1d(in_channels, out_channels, 3, dilation)
        self.emb_proj = nn.Linear(emb_channels, 2 * out_channels)
        self.video_out_norm = GroupNorm32(groups, out_channels)
        self.video_out_conv = zero_init(nn.Conv3d(out_channels, out_channels, 1))
        self.audio_out_norm = GroupNorm32(groups, out_channels)
        self.audio_out_conv = zero_init(nn.Conv1d(out_channels, out_channels, 1))
        self.dropout = nn.Dropout(dropout)
        if in_channels != out_channels:
            self.video_skip = nn.Conv3d(in_channels, out_channels, 1)
            self.audio_skip = nn.Conv1d(in_channels, out_channels, 1)
        else:
            self.video_skip = self.audio_skip = None
        self.video_attention = (
            VideoSelfAttention(out_channels, video_attention_heads, groups)
            if video_attention_heads
            else None
        )
        self.audio_attention = (
            AudioSelfAttention(out_channels, audio_attention_heads, groups)
            if audio_attention_heads
            else None
        )

    def forward(self, video: Tensor, audio: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        hv = self.video_in_conv(F.silu(self.video_in_norm(video)))
        norm, conv = self.audio_in_norm, self.audio_in_conv
        ha = gn_silu_conv1d(
            audio,
            norm.weight,
            norm.bias,
            norm.num_groups,
            conv.weight,
            conv.bias,
            self.dilation,
            norm.eps,
            backend=self.conv_backend,
        )
        if self.resample is not None:
            resample_video, resample_audio = _RESAMPLE[self.resample]
            hv, video = resample_video(hv), resample_video(video)
            ha, audio = resample_audio(ha), resample_audio(audio)

        scale, shift = self.emb_proj(F.silu(emb)).to(hv.dtype).chunk(2, dim=1)  # [B, Cout] each
        hv = (
            self.video_out_norm(hv) * (1 + scale[:, :, None, None, None])
            + shift[:, :, None, None, None]
        )
        hv = self.video_out_conv(self.dropout(F.silu(hv)))
        ha = self.audio_out_norm(ha) * (1 + scale[:, :, None]) + shift[:, :, None]
        ha = self.audio_out_conv(self.dropout(F.silu(ha)))

        video = (video if self.video_skip is None else self.video_skip(video)) + hv
        audio = (audio if self.audio_skip is None else self.audio_skip(audio)) + ha
        if self.video_attention is not None:
            video = self.video_attention(video)
        if self.audio_attention is not None:
            audio = self.audio_attention(audio)
        return video, audio
