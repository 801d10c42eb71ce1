"""Frames of a clip dataset as super-resolution training pairs (high-res frame, degraded low-res)."""

from __future__ import annotations

import torch
from torch import Tensor

from mmfast.data.degrade import sr_pair


class SRFrames:
    """Every frame of every clip of `clips` (a dataset whose items are (video [F, 3, S, S], audio),
    S = the SR model's large size) as (high [3, S, S], low [3, s, s]): the frame, and its bicubic
    downscale to `small_size` with the release's degradations (see `mmfast.data.degrade`), drawn
    from the item's generator.

    Item i is frame i % F of clip i // F (F = frames per clip; a folder dataset read with
    frames=1 gives one frame per item).
    """

    def __init__(self, clips, frames: int, small_size: int):
        if frames < 1 or small_size < 1:
            raise ValueError(
                f"expected frames >= 1 and small_size >= 1, got {frames}, {small_size}"
            )
        self.clips, self.frames, self.small_size = clips, frames, small_size

    def __len__(self) -> int:
        return len(self.clips) * self.frames

    def get(self, index: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        clip, frame = divmod(index, self.frames)
        video, _ = self.clips.get(clip, generator)
        return sr_pair(video[frame], self.small_size, generator)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.get(index)
