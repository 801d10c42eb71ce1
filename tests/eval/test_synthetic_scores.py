"""The synthetic task's scores (mmfast.eval.synthetic): the A/V-sync score separates real clips
from mismatched pairs and noise, reads the pitch rule rather than mere motion, and the reference
rows the demo prints beside generated clips."""

from __future__ import annotations

import pytest
import torch

from mmfast.data import SyntheticAVDataset
from mmfast.data.synthetic import _clip_generator, _Scene, pitch_of_height
from mmfast.eval.synthetic import av_sync_score, av_sync_scores, reference_pairs

SIZES = {"release-64x64-25600": (64, 25600, 16000), "tiny-32x32-4096": (32, 4096, 2560)}


def _batch(data: SyntheticAVDataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    clips = [data[i] for i in range(n)]
    return torch.stack([v for v, _ in clips]), torch.stack([a for _, a in clips])


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
