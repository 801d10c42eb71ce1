"""`mmfast.generate.generate`'s seeding: a generator per clip by default, seeded by (seed, k), the
release's single generator across batches with timesteps="release"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers import randomize_, rel_err
from torch import nn

from mmfast.diffusion import sample
from mmfast.generate import clip_generators, clip_seed, generate, upsample
from mmfast.models import CoupledUNet, SuperResUNet, get_sr_config

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


def test_clip_k_is_a_function_of_seed_and_k():
    """Any batch size, any subset of clips, conditioned or not: clip k is the same (the stand-in
    denoiser is element-wise, so rows of different batches compare exactly)."""
    model = Shrink()
    opts = {"sampler": "ddpm", "steps": 5, "seed": 3}  # ancestral: every step draws noise
    v4, a4 = generate(model, 4, batch_size=3, **opts)
    v1, a1 = generate(model, 4, batch_size=1, clips=[3, 1], **opts)
    assert torch.equal(v4[[3, 1]], v1) and torch.equal(a4[[3, 1]], a1)
    alone = sample(model, *_shapes(1), sampler="ddpm", steps=5, generator=clip_generators(3, [2]))
    with torch.no_grad():
        torch.testing.assert_close(v4[2:3], alone[0].clamp(-1, 1), rtol=0, atol=0)
    assert not torch.equal(v4[0], v4[1])
    given = {"condition_audio": torch.zeros(1, 8), "method": "replacement"}
    c4 = generate(model, 4, batch_size=4, **given, **opts)[0]
    c1 = generate(model, 4, batch_size=1, clips=[2], **given, **opts)[0]
    assert torch.equal(c4[2:3], c1)


def test_clip_seeds_are_distinct_and_the_release_order_takes_no_subset():
    seeds = {clip_seed(s, k) for s in range(3) for k in range(1000)}
    assert len(seeds) == 3000 and all(0 <= x < 2**63 for x in seeds)
    with pytest.raises(ValueError, match="no clips subset"):
        generate(Shrink(), 4, clips=[1], timesteps="release", sampler="ddpm", steps=2)
    with pytest.raises(ValueError, match="distinct indices"):
        generate(Shrink(), 4, clips=[1, 4], sampler="ddpm", steps=2)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2)])
def test_a_model_cast_whole_to_16_bits_samples(dtype, tol):
    """generate() with `model.to(dtype)` (it failed at the time embedding): float32 clips within
    16-bit rounding of the fp32 model's, from the same seed. (fp16: the forward pass is tested in
    tests/models; sampling with it costs a minute on the CPU, which has few fp16 kernels.)"""
    ref = generate(randomize_(CoupledUNet("tiny"), 3, std=0.05).eval(), 2, steps=3, seed=0)
    half = randomize_(CoupledUNet("tiny"), 3, std=0.05).eval().to(dtype)
    video, audio = generate(half, 2, steps=3, seed=0)
    assert video.dtype == audio.dtype == torch.float32
    assert rel_err(video, ref[0]) < tol and rel_err(audio, ref[1]) < tol


def test_precision_runs_the_model_under_autocast_and_returns_float32():
    """precision="bf16": the model calls run under autocast (the stand-in sees it on) and the
    clips are float32; a caller's own autocast is left on with the default "fp32". (The clips'
    closeness to fp32's is checked on a real model through `mmfast sample --precision`.)"""
    seen = []

    class Watch(Shrink):
        def forward(self, video, audio, t):
            seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
            return super().forward(video, audio, t)

    model = Watch()
    ref = generate(model, 2, steps=3, seed=0)
    assert set(seen) == {False}
    seen.clear()
    video, audio = generate(model, 2, steps=3, seed=0, precision="bf16")
    assert set(seen) == {torch.bfloat16}
    assert video.dtype == audio.dtype == torch.float32 and video.shape == ref[0].shape
    seen.clear()
    with torch.autocast("cpu", dtype=torch.float16):
        generate(model, 1, steps=2, seed=0)
    assert set(seen) == {torch.float16}
    with pytest.raises(ValueError, match="precision.*fp32.*fp16.*bf16"):
        generate(model, 1, steps=2, precision="fp64")


def test_upsample_precision_autocasts_the_sr_model():
    """upsample(precision="bf16"), as `mmfast sample --sr --precision bf16`: float32 frames within
    bf16 rounding of the fp32 run's, and not the very same numbers (autocast was on)."""
    model = randomize_(SuperResUNet(get_sr_config("tiny-sr", large_size=32, small_size=8)), 0, 0.05)
    low = torch.rand(1, 2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ref = upsample(model, low, steps=2, seed=0)
    got = upsample(model, low, steps=2, seed=0, precision="bf16")
    assert got.dtype == torch.float32 and got.shape == ref.shape == (1, 2, 3, 32, 32)
    assert 0 < rel_err(got, ref) < 3e-2, rel_err(got, ref)
