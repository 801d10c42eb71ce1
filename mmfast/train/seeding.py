"""Every random draw of a run is a pure function of (seed, rank, step, stream): a resumed run
draws exactly what an uninterrupted one would, with no generator state to carry."""

from __future__ import annotations

import numpy as np
import torch

STREAMS = {"diffusion": 1, "dropout": 2, "shift": 3, "data": 4, "epoch": 5}


def derive_seed(seed: int, *parts: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence)."""
    words = np.random.SeedSequence([seed, *parts]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 ^ int(words[1])


def step_generator(
    seed: int, rank: int, step: int, stream: str, device: torch.device | str = "cpu"
) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(
        derive_seed(seed, STREAMS[stream], rank, step)
    )
