"""`mmfast.generate.generate`'s seeding: per-batch generators by default, the release's single
generator across batches with timesteps="release"."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from mmfast.diffusion import sample
from mmfast.generate import generate

CONFIG = SimpleNamespace(
    video_frames=2,
    video_channels=3,
    video_size=4,
    audio_channels=1,
    audio_length=8,
    prediction="eps",
)


class Shrink(nn.Module):
    """A stand-in denoiser with the model's call signature: eps = 0.1 * x."""

    config = CONFIG

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.1))

    def forward(self, video, audio, t):
        return self.weight * video, self.weight * audio


def _shapes(b: int):
    return (b, 2, 3, 4, 4), (b, 1, 8)


def test_release_batches_share_one_generator():
    model = Shrink()
    opts = {"sampler": "ddpm", "steps": 5, "seed": 3}
    v, a = generate(model, 5, batch_size=2, timesteps="release", **opts)
    g = torch.Generator().manual_seed(3)
    expected = [
        sample(model, *_shapes(b), sampler="ddpm", steps=5, generator=g, timesteps="release")
        for b in (2, 2, 1)
    ]
    with torch.no_grad():
        torch.testing.assert_close(v, torch.cat([e[0] for e in expected]).clamp(-1, 1))
        torch.testing.assert_close(a, torch.cat([e[1] for e in expected]).clamp(-1, 1))


def test_default_batches_are_seeded_each():
    model = Shrink()
    v, _ = generate(model, 4, batch_size=2, sampler="ddpm", steps=5, seed=3)
    first = sample(
        model,
        *_shapes(2),
        sampler="ddpm",
        steps=5,
        generator=torch.Generator().manual_seed(3 * 1_000_003 + 1),
    )[0]
    torch.testing.assert_close(v[2:], first.clamp(-1, 1))
