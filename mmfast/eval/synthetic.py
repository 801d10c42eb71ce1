"""Scores of the synthetic task (`mmfast.data.synthetic`), for generated clips as for real ones.

`av_sync_score` checks the tone rule: the agreement (concordance correlation) between the ball's
height read from each frame's pixels and the height that the pitch of the sound around that frame
stands for. `frame_scores` checks the picture alone; `reference_pairs` gives what a model's clips
are scored beside (real, shuffled and noise pairs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from mmfast.data.synthetic import (
    BACKGROUND,
    BALL,
    F_HIGH,
    F_LOW,
    RADIUS,
    SEARCH_HIGH,
    SEARCH_LOW,
    SyntheticAVDataset,
)


def height_of_pitch(freq: torch.Tensor) -> torch.Tensor:
    """The rule's inverse: Hz -> height (0 at F_LOW, 1 at F_HIGH; outside when out of band)."""
    return torch.log(freq / F_LOW) / math.log(F_HIGH / F_LOW)


def av_sync_score(
    video: torch.Tensor, audio: torch.Tensor, *, fps: float, audio_rate: float
) -> float:
    """How well the sound of a clip follows its picture under the synthetic rule, in [-1, 1].

    video: [F, 3, H, W] in [-1, 1]; audio: [1, L] or [L] in [-1, 1], L ~ F * audio_rate / fps.
    Per frame k, two readings of the ball's height in [0, 1]:
      * seen: from the centroid row of the pixels that stand out from the frame's median colour
        (weights: distance to the median minus its 90th percentile, so a haze of noise over the
        whole frame does not drag the centroid to the middle), through the scene's geometry;
      * heard: from the strongest frequency between 120 and 1125 Hz in a Hann window one frame
        period long centred on the frame's instant k / fps, through the inverse of the pitch rule.
    The score is Lin's concordance correlation of the two F-long sequences,
        2 cov(seen, heard) / (var(seen) + var(heard) + (mean(seen) - mean(heard))^2),
    which is 1 only when they agree in value (not merely rise and fall together) and 0 when they
    are unrelated or either is constant. Measured over 64 clips of each size (64x64 with 25600
    samples, 32x32 with 4096): real clips 0.99 or more; shuffled pairs (picture and sound of
    different clips) and noise about 0 on average with a spread of about 0.35 per clip, so compare
    means over a dozen clips or more.
    """
    return av_sync_scores(video[None], audio.reshape(1, 1, -1), fps=fps, audio_rate=audio_rate)[
        0
    ].item()


def av_sync_scores(
    videos: torch.Tensor, audios: torch.Tensor, *, fps: float, audio_rate: float
) -> torch.Tensor:
    """`av_sync_score` of each clip of a batch: videos [B, F, 3, H, W], audios [B, 1, L] -> [B]."""
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"videos must be [B, F, 3, H, W], got {tuple(videos.shape)}")
    if audios.ndim != 3 or audios.shape[1] != 1 or audios.shape[0] != videos.shape[0]:
        raise ValueError(
            f"audios must be [B, 1, L] with B = {videos.shape[0]}, got {tuple(audios.shape)}"
        )
    if audio_rate / 2 <= F_LOW:
        raise ValueError(f"audio_rate {audio_rate} Hz is too low to carry the {F_LOW:g} Hz tone")
    seen = heights_from_video(videos)
    heard = heights_from_audio(audios[:, 0], videos.shape[1], fps=fps, audio_rate=audio_rate)
    return concordance(seen, heard)


def heights_from_video(videos: torch.Tensor) -> torch.Tensor:
    """[B, F, 3, H, W] -> [B, F]: the ball's height (0: on the floor, 1: at the ceiling) from the
    centroid row of the salient pixels (see `av_sync_score`)."""
    b, f, _, h, w = videos.shape
    x = videos.detach().float().cpu().reshape(b, f, 3, h * w)
    median = x.median(dim=-1, keepdim=True).values
    dist = (x - median).square().sum(dim=2).sqrt()  # [B, F, H*W]
    weight = (dist - torch.quantile(dist, 0.9, dim=-1, keepdim=True)).clamp_min(0.0)
    rows = torch.arange(h, dtype=torch.float32).repeat_interleave(w)
    total = weight.sum(-1)
    centroid = (weight * rows).sum(-1) / total.clamp_min(1e-12)
    centroid = torch.where(total > 0, centroid, torch.full_like(centroid, (h - 1) / 2))
    radius = RADIUS * h
    return ((h - 1 - radius) - centroid) / (h - 1 - 2 * radius)


def heights_from_audio(
    audio: torch.Tensor, frames: int, *, fps: float, audio_rate: float
) -> torch.Tensor:
    """[B, L] -> [B, frames]: the rule's height for the dominant in-band pitch around each frame."""
    audio = audio.detach().float().cpu()
    hop = audio_rate / fps  # samples per frame period
    win = max(8, round(hop))
    n_fft = 2 ** math.ceil(math.log2(4 * win))  # zero padding, then parabolic interpolation
    window = torch.hann_window(win, periodic=False)
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * audio_rate / n_fft
    band = torch.nonzero((freqs >= SEARCH_LOW) & (freqs <= min(SEARCH_HIGH, audio_rate / 2)))
    lo, hi = band[0].item(), band[-1].item() + 1
    # Zero-padded segments of `win` samples centred on each frame's instant k * hop.
    padded = torch.nn.functional.pad(audio, (win, win + n_fft))
    starts = [round(k * hop) - win // 2 + win for k in range(frames)]
    segments = torch.stack([padded[:, s : s + win] for s in starts], dim=1) * window  # [B, F, win]
    spectrum = torch.view_as_real(torch.fft.rfft(segments, n=n_fft)[..., lo:hi])
    power = spectrum.square().sum(-1).double()  # [B, F, bins]
    peak = power.argmax(-1)
    # Parabolic interpolation of the log power around the peak bin.
    log_p = (power + 1e-20).log()
    left = log_p.gather(-1, (peak - 1).clamp_min(0)[..., None])[..., 0]
    mid = log_p.gather(-1, peak[..., None])[..., 0]
    right = log_p.gather(-1, (peak + 1).clamp_max(hi - lo - 1)[..., None])[..., 0]
    curve = left - 2 * mid + right
    shift = torch.where(curve < 0, 0.5 * (left - right) / curve, torch.zeros_like(curve))
    freq = (lo + peak + shift.clamp(-0.5, 0.5)) * audio_rate / n_fft
    return height_of_pitch(freq).float()


def concordance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise concordance correlation of [B, F] tensors; 0 where a row is (nearly) constant."""
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(-1, keepdim=True), b.mean(-1, keepdim=True)
    var_a = (a - mean_a).square().mean(-1)
    var_b = (b - mean_b).square().mean(-1)
    cov = ((a - mean_a) * (b - mean_b)).mean(-1)
    ok = (var_a > 1e-8) & (var_b > 1e-8)
    r = 2 * cov / (var_a + var_b + (mean_a - mean_b).square()[..., 0]).clamp_min(1e-300)
    return torch.where(ok, r, torch.zeros_like(r)).float()


def reference_pairs(
    num: int, *, frames: int, size: int, audio_length: int, fps: float, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What generated clips are scored beside, each (videos [num, F, 3, S, S], audios [num, 1, L]):
    "real": clips 0..num-1 of `seed`; "shuffled": the same pictures with each sound moved to the
    next clip (mismatched pairs); "noise": uniform noise in [-1, 1] drawn from `seed`."""
    real = SyntheticAVDataset(
        num, frames=frames, size=size, audio_length=audio_length, fps=fps, seed=seed
    )
    videos, audios = (torch.stack(x) for x in zip(*(real[i] for i in range(num))))
    g = torch.Generator().manual_seed(seed)
    noise_v = torch.rand(videos.shape, generator=g) * 2 - 1
    noise_a = torch.rand(audios.shape, generator=g) * 2 - 1
    return {
        "real": (videos, audios),
        "shuffled": (videos, audios.roll(1, 0)),
        "noise": (noise_v, noise_a),
    }


class FrameScores(NamedTuple):
    """Per clip [B]: how far each frame's median colour is from the scene's background (the mean
    over frames of the L2 distance, in [-1, 1] units; 0 for real clips), and the fraction of
    frames showing exactly one ball: one 8-connected blob of ball-coloured pixels (closer to BALL
    than to BACKGROUND) whose area is within a factor 3 of the ball's."""

    background_error: torch.Tensor
    ball_frames: torch.Tensor


def frame_scores(videos: torch.Tensor) -> FrameScores:
    """`FrameScores` of videos [B, F, 3, H, W] in [-1, 1] (real clips: 0 and 1)."""
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"videos must be [B, F, 3, H, W], got {tuple(videos.shape)}")
    b, f, _, h, w = videos.shape
    x = videos.detach().float().cpu().reshape(b * f, 3, h, w)
    bg = torch.tensor(BACKGROUND).view(1, 3, 1, 1)
    ball = torch.tensor(BALL).view(1, 3, 1, 1)
    median = x.flatten(2).median(dim=-1).values  # [B*F, 3]
    background_error = (median - bg.view(1, 3)).norm(dim=-1).view(b, f).mean(1)
    mask = (x - ball).norm(dim=1) < (x - bg).norm(dim=1)  # [B*F, H, W]
    area = mask.flatten(1).sum(1).float()
    expected = math.pi * (RADIUS * h) ** 2
    one_ball = (blob_count(mask) == 1) & (area >= expected / 3) & (area <= 3 * expected)
    return FrameScores(background_error, one_ball.view(b, f).float().mean(1))


def blob_count(mask: torch.Tensor) -> torch.Tensor:
    """Number of 8-connected components of each boolean image [N, H, W] -> [N]."""
    n, h, w = mask.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w).expand(n, 1, h, w)
    inside = mask[:, None].float()
    labels = ids * inside
    while True:  # every pixel takes its neighbourhood's largest label, within the mask
        grown = torch.nn.functional.max_pool2d(labels, 3, stride=1, padding=1) * inside
        if torch.equal(grown, labels):
            break
        labels = grown
    return torch.tensor([int(torch.unique(row[row > 0]).numel()) for row in labels.flatten(1)])
