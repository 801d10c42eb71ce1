"""The SR stage's training pairs: the release's degradations drawn with their stated
distributions, applied as stated, and the frame dataset that serves them."""

from __future__ import annotations

import math

import pytest
import torch

from mmfast.data.degrade import Degradation, degrade, downscale, draw_degradation, jpeg, sr_pair
from mmfast.data.sr_frames import SRFrames
from mmfast.data.synthetic import SyntheticAVDataset

N = 6000


@pytest.fixture(scope="module")
def draws() -> list[Degradation]:
    g = torch.Generator().manual_seed(11)
    return [draw_degradation(g) for _ in range(N)]


def _within(count: int, n: int, p: float, sds: float = 4.5) -> bool:
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p))


def test_each_degradation_has_probability_one_half_independently(draws):
    noisy = [d.noise_sigma > 0 for d in draws]
    jpegged = [d.jpeg_quality is not None for d in draws]
    assert _within(sum(noisy), N, 0.5) and _within(sum(jpegged), N, 0.5)
    assert _within(sum(a and b for a, b in zip(noisy, jpegged)), N, 0.25)


def test_noise_sigma_is_uniform_on_0_20(draws):
    sigmas = sorted(d.noise_sigma for d in draws if d.noise_sigma > 0)
    assert sigmas[0] > 0 and sigmas[-1] < 20
    n = len(sigmas)
    ks = max(max(abs((i + 1) / n - s / 20), abs(i / n - s / 20)) for i, s in enumerate(sigmas))
    assert ks < 1.95 / math.sqrt(n)  # Kolmogorov-Smirnov at the 0.001 level


def test_jpeg_quality_is_uniform_on_20_to_79(draws):
    qualities = [d.jpeg_quality for d in draws if d.jpeg_quality is not None]
    assert set(qualities) == set(range(20, 80))
    n, k = len(qualities), 60
    chi2 = sum((qualities.count(q) - n / k) ** 2 / (n / k) for q in range(20, 80))
    assert chi2 < 104  # chi-square with 59 degrees of freedom at the 0.001 level


def test_noise_is_applied_at_its_sigma_on_the_0_255_scale():
    image = torch.zeros(3, 64, 64)
    out = degrade(image, Degradation(noise_sigma=20.0), torch.Generator().manual_seed(1))
    assert out.std().item() * 127.5 == pytest.approx(20.0, rel=0.03)
    assert torch.equal(degrade(image, Degradation()), image)  # nothing drawn, nothing changed


def test_jpeg_loses_more_at_low_quality():
    g = torch.Generator().manual_seed(2)
    image = (torch.rand(3, 32, 32, generator=g) * 2 - 1).clamp(-1, 1)
    errors = [(jpeg(image, q) - image).abs().mean().item() for q in (20, 50, 79)]
    assert errors[0] > errors[1] > errors[2] > 0
    assert jpeg(image, 20).shape == image.shape and jpeg(image, 20).abs().max() <= 1


def test_pairs_are_bicubic_downscales_seeded_by_the_draw():
    frame = torch.linspace(-1, 1, 64).repeat(3, 64, 1)
    assert downscale(frame, 16).shape == (3, 16, 16)
    flat = torch.full((3, 64, 64), 0.25)
    torch.testing.assert_close(downscale(flat, 16), torch.full((3, 16, 16), 0.25))
    a = sr_pair(frame, 16, torch.Generator().manual_seed(5))
    b = sr_pair(frame, 16, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], frame) and torch.equal(a[1], b[1])


def test_sr_frames_serve_every_frame_of_every_clip():
    clips = SyntheticAVDataset(3, frames=4, size=32, audio_length=4 * 256, fps=10.0, seed=1)
    data = SRFrames(clips, frames=4, small_size=8)
    assert len(data) == 12
    high, low = data.get(6, torch.Generator().manual_seed(0))
    assert high.shape == (3, 32, 32) and low.shape == (3, 8, 8)
    torch.testing.assert_close(high, clips.get(1)[0][2])
