"""Clips -> features: I3D logits for FVD / KVD, VGGish or AudioCLIP embeddings for FAD."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfast.eval.protocol import Protocol

I3D_SIZE = 224


def i3d_input(videos: Tensor, protocol: Protocol) -> Tensor:
    """videos [B, F, 3, H, W] in [-1, 1] -> I3D's input [B, 3, F, 224, 224] in [-1, 1].

    The shorter side is scaled to 224 (bilinear) and the centre cut out, as MM-Diffusion's (and
    StyleGAN-V's) FVD code does; `protocol.truncate_uint8` first maps to uint8 by truncation and
    back, and skips antialiasing, as the release did."""
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"videos must be [B, F, 3, H, W], got {tuple(videos.shape)}")
    b, f, _, h, w = videos.shape
    x = videos.detach().to(torch.float32).reshape(b * f, 3, h, w)
    if protocol.truncate_uint8:
        x = ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8).to(torch.float32) / 255.0
    else:
        x = (x + 1) / 2
    scale = I3D_SIZE / min(h, w)
    target = (I3D_SIZE, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), I3D_SIZE)
    x = F.interpolate(
        x, size=target, mode="bilinear", align_corners=False, antialias=not protocol.truncate_uint8
    )
    top, left = (x.shape[2] - I3D_SIZE) // 2, (x.shape[3] - I3D_SIZE) // 2
    x = x[:, :, top : top + I3D_SIZE, left : left + I3D_SIZE]
    x = (x - 0.5) * 2
    return x.reshape(b, f, 3, I3D_SIZE, I3D_SIZE).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def video_features(i3d: nn.Module, videos: Tensor, protocol: Protocol) -> Tensor:
    """videos [B, F, 3, H, W] in [-1, 1] -> I3D logits [B, 400] (float32, on the CPU)."""
    param = next(i3d.parameters())
    return i3d(i3d_input(videos, protocol).to(param.device)).float().cpu()


@torch.no_grad()
def vggish_features(vggish: nn.Module, audios: Tensor) -> Tensor:
    """audios [B, 1, L] at 16 kHz -> VGGish embeddings [B * n, 128]: every 0.96 s example of
    every clip, the last one aligned to the clip's end so that all of it is heard."""
    from mmfast.eval.vggish import examples, log_mel

    param = next(vggish.parameters())
    mel = log_mel(audios[:, 0].to(torch.float32))  # [B, frames, 64]
    batch = torch.cat([examples(m, cover_tail=True) for m in mel])
    return vggish(batch.to(param.device)).float().cpu()


@torch.no_grad()
def audioclip_features(head: nn.Module, audios: Tensor, protocol: Protocol) -> Tensor:
    """audios [N, 1, L] at 44.1 kHz -> AudioCLIP audio embeddings [N, 1024], in batches of
    `protocol.audio_batch` in the given order (with batch statistics these depend on it)."""
    param = next(head.parameters())
    head.train(protocol.audioclip_batch_stats)
    out = []
    for i in range(0, audios.shape[0], protocol.audio_batch):
        wave = audios[i : i + protocol.audio_batch].to(param.device, torch.float32)
        out.append(head(wave * protocol.audio_scale).float().cpu())
    head.eval()
    return torch.cat(out)
