"""Fit a decoded picture into a size x size square: letterbox (the release's choice) or centre crop.

Scaling is done by swscale (area averaging, so downscaling does not alias) while converting to RGB;
padding and cropping are done on the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmfast.choice import Choice
from mmfast.data.pyav import av


class Resize(Choice):
    LETTERBOX = "letterbox"  # the release's
    CENTER_CROP = "center-crop"


RESIZE_MODES: tuple[str, ...] = tuple(r.value for r in Resize)


@dataclass(frozen=True)
class FitPlan:
    """Scale the source to `scaled_w` x `scaled_h`, then pad (letterbox, offsets >= 0) or crop
    (centre crop, offsets <= 0) so that its top-left corner lands at (`left`, `top`)."""

    scaled_w: int
    scaled_h: int
    left: int
    top: int
    size: int
    interpolation: str = "AREA"  # FFmpeg's scaler: AREA (clips) or BICUBIC (the SR stage's frames)


def check_resize(resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")


INTERPOLATIONS = ("area", "bicubic")


def plan_fit(
    width: int, height: int, size: int, resize: Resize, interpolation: str = "area"
) -> FitPlan:
    """Letterbox: scale the long side to `size`, pad the short one. Centre crop: scale the short
    side to `size`, cut the long one. `interpolation`: "area" or "bicubic"."""
    check_resize(resize)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if width <= 0 or height <= 0 or size <= 0:
        raise ValueError(f"expected positive sizes, got {width}x{height} -> {size}")
    scale = size / max(width, height) if resize == "letterbox" else size / min(width, height)
    scaled_w = max(1, round(width * scale))
    scaled_h = max(1, round(height * scale))
    return FitPlan(
        scaled_w,
        scaled_h,
        (size - scaled_w) // 2,
        (size - scaled_h) // 2,
        size,
        interpolation.upper(),
    )


def fit_frame(frame: av.VideoFrame, plan: FitPlan) -> torch.Tensor:
    """frame (any pixel format) -> [3, size, size] uint8 RGB; letterbox bars are black."""
    rgb = frame.reformat(
        width=plan.scaled_w, height=plan.scaled_h, format="rgb24", interpolation=plan.interpolation
    ).to_ndarray()
    image = torch.from_numpy(rgb).permute(2, 0, 1)  # [3, scaled_h, scaled_w]
    return place(image, plan)


def place(image: torch.Tensor, plan: FitPlan) -> torch.Tensor:
    """image [C, scaled_h, scaled_w] -> [C, size, size]: zero padding or a centred cut."""
    right = plan.size - plan.scaled_w - plan.left
    bottom = plan.size - plan.scaled_h - plan.top
    # F.pad with negative amounts crops, so one call serves both modes.
    return F.pad(image, (plan.left, right, plan.top, bottom)).contiguous()


def to_unit_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] in [0, 255] -> float32 in [-1, 1]."""
    return frames.to(torch.float32) / 127.5 - 1.0
