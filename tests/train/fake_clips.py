"""A tiny deterministic clip dataset for trainer tests (the real ones are tested in tests/data)."""

from __future__ import annotations

import torch

# The tiny model on 8 frames of 16x16 video and 512 audio samples: quick on a CPU.
SMALL_MODEL = (("video_frames", 8), ("video_size", 16), ("audio_length", 512))


class FakeClips:
    def __init__(self, n: int = 10, frames: int = 8, size: int = 16, length: int = 512):
        self.n, self.frames, self.size, self.length = n, frames, size, length
        self.seen: list[int] = []

    def __len__(self) -> int:
        return self.n

    def get(self, index: int, generator: torch.Generator | None = None):
        self.seen.append(index)
        g = torch.Generator().manual_seed(index)
        video = torch.rand(self.frames, 3, self.size, self.size, generator=g) * 2 - 1
        audio = torch.rand(1, self.length, generator=g) * 2 - 1
        if generator is not None and torch.rand((), generator=generator) < 0.5:
            video = video.flip(-1)
        return video, audio
