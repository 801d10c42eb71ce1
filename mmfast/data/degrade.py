"""The super-resolution stage's training pairs: a high-res frame, its bicubic downscale, and the
release's degradations of that low-res input (so the model learns to clean what the base model
produces, not only to enlarge it).

Degradations, in order, each drawn from the item's generator: Gaussian noise of sigma ~ U(0, 20)
(on the 0-255 scale) with probability 0.5, then JPEG at a quality drawn uniformly from
[20, 80) with probability 0.5 (Pillow's encoder; the image is rounded to 8 bits for it).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

NOISE_P, NOISE_SIGMA_MAX = 0.5, 20.0  # sigma on the 0-255 scale
JPEG_P, JPEG_QUALITY = 0.5, (20, 80)  # quality in [20, 80)


@dataclass(frozen=True)
class Degradation:
    """What was applied to one low-res image: sigma on the 0-255 scale (0: none), JPEG quality
    (None: none)."""

    noise_sigma: float = 0.0
    jpeg_quality: int | None = None


def downscale(image: Tensor, size: int) -> Tensor:
    """Bicubic (antialiased, as image libraries' resize) [C, H, W] -> [C, size, size] in [-1, 1]."""
    out = F.interpolate(
        image[None].float(), (size, size), mode="bicubic", antialias=True, align_corners=False
    )
    return out[0].clamp(-1, 1)


def draw_degradation(generator: torch.Generator | None) -> Degradation:
    """Draw the release's degradations (four numbers from `generator`, whatever is applied)."""
    u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    sigma = u[1] * NOISE_SIGMA_MAX if u[0] < NOISE_P else 0.0
    low, high = JPEG_QUALITY
    quality = low + min(int(u[3] * (high - low)), high - low - 1) if u[2] < JPEG_P else None
    return Degradation(sigma, quality)


def degrade(image: Tensor, spec: Degradation, generator: torch.Generator | None = None) -> Tensor:
    """Apply `spec` to image [3, H, W] in [-1, 1]; the noise comes from `generator`."""
    out = image.float()
    if spec.noise_sigma > 0:
        noise = torch.randn(out.shape, generator=generator, dtype=torch.float32)
        out = (out + noise * (spec.noise_sigma / 127.5)).clamp(-1, 1)
    if spec.jpeg_quality is not None:
        out = jpeg(out, spec.jpeg_quality)
    return out


def jpeg(image: Tensor, quality: int) -> Tensor:
    """Encode [3, H, W] in [-1, 1] as JPEG at `quality` and decode it back."""
    pixels = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 127.5 - 1.0


def sr_pair(
    frame: Tensor, small_size: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """(high [3, S, S], degraded low [3, s, s]) from one high-res frame [3, S, S] in [-1, 1]."""
    spec = draw_degradation(generator)
    return frame.float(), degrade(downscale(frame, small_size), spec, generator)
