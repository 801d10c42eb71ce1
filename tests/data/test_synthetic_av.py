"""The synthetic bouncing-ball task, at the release's and the tiny sizes (its scores check the
clips: tests/eval/test_synthetic_scores.py)."""

from __future__ import annotations

import pytest
import torch

from mmfast.data import SyntheticAVDataset
from mmfast.data.synthetic import _clip_generator, _Scene
from mmfast.eval.synthetic import av_sync_score, av_sync_scores

SIZES = {"release-64x64-25600": (64, 25600, 16000), "tiny-32x32-4096": (32, 4096, 2560)}


@pytest.mark.parametrize("name", list(SIZES))
def test_shapes_ranges_and_derived_audio_rate(name):
    size, length, rate = SIZES[name]
    data = SyntheticAVDataset(10, size=size, audio_length=length)
    assert (len(data), data.audio_rate) == (10, rate)
    video, audio = data[3]
    assert video.shape == (16, 3, size, size) and audio.shape == (1, length)
    assert video.dtype == audio.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1 and audio.abs().max() <= 1
    assert audio.abs().max() > 0.4  # a loud, clear tone


def test_clips_are_pure_functions_of_seed_and_index():
    a, b = SyntheticAVDataset(100, seed=7), SyntheticAVDataset(100, seed=7)
    for i in (0, 1, 99, -1):
        torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)
    torch.testing.assert_close(a.get(5, torch.Generator().manual_seed(1)), a[5], rtol=0, atol=0)
    v0, a0 = a[0]
    for other in (a[1], SyntheticAVDataset(100, seed=8)[0]):
        assert (other[0] - v0).abs().mean() > 0.005 and (other[1] - a0).abs().mean() > 0.05
    with pytest.raises(IndexError):
        a[100]


def test_flip_uses_the_generator_and_keeps_the_rule():
    data = SyntheticAVDataset(4, size=32, audio_length=4096, hflip_p=0.5)
    plain_v, plain_a = data[2]
    outcomes = set()
    for seed in range(8):
        v, a = data.get(2, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(a, plain_a)
        outcomes.add(torch.equal(v, plain_v.flip(-1)))
        assert torch.equal(v, plain_v) or torch.equal(v, plain_v.flip(-1))
        assert av_sync_score(v, a, fps=10, audio_rate=2560) > 0.95
    assert outcomes == {True, False}


def test_every_floor_or_wall_bounce_clicks():
    """High-frequency energy (above the 900 Hz tone) appears exactly at the scene's bounces."""
    data = SyntheticAVDataset(8)
    for index in range(8):
        _, audio = data[index]
        scene = _Scene.draw(_clip_generator(0, index), 1.6)
        bounces = scene.bounces(1.6)
        assert bounces, "every clip has at least one bounce"
        x = audio[0].double()
        hf = (x[2:] - 2 * x[1:-1] + x[:-2]).abs()  # the tone's 2nd difference is < 0.02
        loud = torch.nonzero(hf > 0.1)[:, 0] / 16000
        for t in bounces:
            assert ((loud - t).abs() < 0.004).any(), (index, t)
        for t in loud.tolist():
            assert min(abs(t - b) for b in bounces) < 0.03, (index, t)


def test_settings_the_tones_cannot_live_with_are_refused():
    with pytest.raises(ValueError, match="too low for tones up to 900 Hz"):
        SyntheticAVDataset(4, size=32, audio_length=2048)  # 1280 Hz
    with pytest.raises(ValueError, match=r"videos must be \[B, F, 3, H, W\]"):
        av_sync_scores(torch.zeros(16, 3, 8, 8), torch.zeros(1, 1, 4096), fps=10, audio_rate=2560)
