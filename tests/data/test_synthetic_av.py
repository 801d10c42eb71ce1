"""The synthetic bouncing-ball task and its A/V-sync score, at the release's and the tiny sizes."""

from __future__ import annotations

import pytest
import torch

from mmfast.data import SyntheticAVDataset, av_sync_score, av_sync_scores
from mmfast.data.synthetic import _clip_generator, _Scene, pitch_of_height, reference_pairs

SIZES = {"release-64x64-25600": (64, 25600, 16000), "tiny-32x32-4096": (32, 4096, 2560)}


def _batch(data: SyntheticAVDataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    clips = [data[i] for i in range(n)]
    return torch.stack([v for v, _ in clips]), torch.stack([a for _, a in clips])


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


@pytest.mark.parametrize("name", list(SIZES))
def test_sync_score_separates_real_from_shuffled_and_noise(name):
    """Measured on clips 0..15 of seed 0, 64x64 / 32x32: real mean 0.998 / 0.998 (min 0.996);
    shuffled (the audio of clip i - 1) mean 0.067 / 0.067 (-0.44 .. 0.67); uniform noise -0.006 /
    0.018; real clips under heavy noise (video + N(0, 0.3^2), audio + N(0, 0.2^2)) 0.987 / 0.986."""
    size, length, rate = SIZES[name]
    videos, audios = _batch(SyntheticAVDataset(16, size=size, audio_length=length), 16)
    real = av_sync_scores(videos, audios, fps=10, audio_rate=rate)
    shuffled = av_sync_scores(videos, audios.roll(1, 0), fps=10, audio_rate=rate)
    g = torch.Generator().manual_seed(0)
    noise = av_sync_scores(
        torch.rand(videos.shape, generator=g) * 2 - 1,
        torch.rand(audios.shape, generator=g) * 2 - 1,
        fps=10,
        audio_rate=rate,
    )
    noisy = av_sync_scores(
        (videos + 0.3 * torch.randn(videos.shape, generator=g)).clamp(-1, 1),
        (audios + 0.2 * torch.randn(audios.shape, generator=g)).clamp(-1, 1),
        fps=10,
        audio_rate=rate,
    )
    assert real.min() > 0.98, real
    assert abs(shuffled.mean()) < 0.25, shuffled
    assert abs(noise.mean()) < 0.1, noise
    assert noisy.mean() > 0.9, noisy
    assert real.mean() - shuffled.mean() > 0.7
    assert av_sync_score(videos[3], audios[3, 0], fps=10, audio_rate=rate) == pytest.approx(
        real[3].item(), abs=1e-6
    )


def test_sync_score_reads_the_rule_not_just_motion():
    """Tones that move with the ball but break the rule score low; a still ball scores 0.
    Measured on clip 0: the rule 0.996, inverted pitch -0.47, one octave too high 0.38."""
    data = SyntheticAVDataset(4)
    video, audio = data[0]
    scene = _Scene.draw(_clip_generator(0, 0), 1.6)
    height = scene.height(torch.arange(25600, dtype=torch.float64) / 16000)

    def tone(freq):
        return 0.5 * torch.sin(2 * torch.pi * torch.cumsum(freq, 0) / 16000).float()[None]

    assert av_sync_score(video, tone(pitch_of_height(height)), fps=10, audio_rate=16000) > 0.98
    assert av_sync_score(video, tone(pitch_of_height(1 - height)), fps=10, audio_rate=16000) < -0.3
    octave_up = av_sync_score(video, tone(2 * pitch_of_height(height)), fps=10, audio_rate=16000)
    assert octave_up < 0.5  # rises and falls with the ball, at the wrong pitch
    still = video[:1].expand(16, -1, -1, -1)
    assert av_sync_score(still, audio, fps=10, audio_rate=16000) == 0.0


def test_settings_the_tones_cannot_live_with_are_refused():
    with pytest.raises(ValueError, match="too low for tones up to 900 Hz"):
        SyntheticAVDataset(4, size=32, audio_length=2048)  # 1280 Hz
    with pytest.raises(ValueError, match=r"videos must be \[B, F, 3, H, W\]"):
        av_sync_scores(torch.zeros(16, 3, 8, 8), torch.zeros(1, 1, 4096), fps=10, audio_rate=2560)


def test_reference_pairs_are_real_mismatched_and_noise():
    """The rows the demo and the learning curves print beside generated clips (demo sizes)."""
    sizes = dict(frames=8, size=16, audio_length=2048, fps=10.0)
    rows = reference_pairs(16, seed=3, **sizes)
    assert list(rows) == ["real", "shuffled", "noise"]
    real_v, real_a = rows["real"]
    data = SyntheticAVDataset(16, seed=3, **sizes)
    video, audio = data[5]
    assert torch.equal(real_v[5], video) and torch.equal(real_a[5], audio)
    shuffled_v, shuffled_a = rows["shuffled"]
    assert torch.equal(shuffled_v, real_v) and torch.equal(shuffled_a[6], real_a[5])
    noise_v, noise_a = rows["noise"]
    assert noise_v.shape == real_v.shape and noise_a.shape == real_a.shape
    assert noise_v.min() >= -1 and noise_v.max() <= 1 and noise_v.std() > 0.5
    assert torch.equal(reference_pairs(16, seed=3, **sizes)["noise"][1], noise_a)
    scores = {
        k: av_sync_scores(v, a, fps=10, audio_rate=data.audio_rate) for k, (v, a) in rows.items()
    }
    assert scores["real"].mean() > 0.95, scores
    assert abs(scores["shuffled"].mean()) < 0.3 and abs(scores["noise"].mean()) < 0.3, scores
