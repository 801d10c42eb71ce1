"""The built-in synthetic audio-visual task and its A/V-sync score.

The scene: a bright ball bounces on a plain dark background under gravity; each floor bounce sends
it up to a new random height, and it moves sideways at a steady speed between the side walls. The
sound is caused by the picture:
  * a steady tone whose pitch follows the ball's height h in [0, 1] (0: resting on the floor,
    1: touching the ceiling), f(h) = F_LOW * (F_HIGH / F_LOW) ** h, i.e. 150 Hz .. 900 Hz, linear
    in octaves; 900 Hz stays well below the tiny preset's Nyquist frequency (2560 Hz audio: 1280);
  * a short click (a 4 ms noise burst) at every bounce off the floor or a wall.
Clip i of seed s is a pure function of (s, i): the apexes, the phase of the first bounce, the
horizontal start and speed, the tone's starting phase and the clicks' noise are drawn from a
generator seeded by both.

`av_sync_score` checks the tone rule on any clip, generated ones too: the agreement (concordance
correlation) between the ball's height read from each frame's pixels and the height that the pitch
of the sound around that frame stands for.
"""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import torch

F_LOW, F_HIGH = 150.0, 900.0  # Hz: the tone at the floor and at the ceiling
GRAVITY = 12.0  # heights per s^2: a ball dropped from the ceiling lands after 0.41 s
# Every floor bounce sends the ball up to a new random apex in this range: unlike a periodic bounce,
# the heights of two unrelated clips then correlate little (see av_sync_score).
APEX_LOW, APEX_HIGH = 0.25, 1.0
RADIUS = 0.1  # of the frame size
TONE_AMPLITUDE = 0.5
CLICK_AMPLITUDE = 0.4
CLICK_DECAY = 0.004  # s
BACKGROUND = (-0.8, -0.75, -0.5)  # dark blue, in [-1, 1]
BALL = (1.0, 0.75, -0.4)  # orange
# The score searches for the tone a little beyond the band it can take.
_SEARCH_LOW, _SEARCH_HIGH = F_LOW / 1.25, F_HIGH * 1.25


class SyntheticAVDataset:
    """`num_clips` clips of the bouncing-ball scene (module docstring), made on the fly.

    get(i) returns
      video: [frames, 3, size, size] float32 in [-1, 1], frame k showing the scene at k / fps;
      audio: [1, audio_length] float32 in [-1, 1], sample n at n / audio_rate,
    with audio_rate = audio_length * fps / frames: 16000 Hz for the release's 16 frames, 25600
    samples; 2560 Hz for the tiny preset's 16 frames, 4096 samples.
    The same (seed, index) always gives the same clip; the left-right flip (probability `hflip_p`,
    one draw from `generator`) keeps the sound valid, the scene being symmetric.

    Example:
        >>> data = SyntheticAVDataset(1000, size=32, audio_length=4096)  # the tiny preset's shapes
        >>> video, audio = data[0]  # [16, 3, 32, 32], [1, 4096]
        >>> av_sync_score(video, audio, fps=data.fps, audio_rate=data.audio_rate)  # ~0.99
    """

    def __init__(
        self,
        num_clips: int,
        *,
        frames: int = 16,
        size: int = 64,
        audio_length: int = 25600,
        fps: float = 10.0,
        seed: int = 0,
        hflip_p: float = 0.0,
    ) -> None:
        if num_clips < 1 or frames < 2 or size < 8 or audio_length < frames or fps <= 0:
            raise ValueError(
                f"expected num_clips >= 1, frames >= 2, size >= 8, audio_length >= frames, "
                f"fps > 0; got {num_clips}, {frames}, {size}, {audio_length}, {fps}"
            )
        if not 0.0 <= hflip_p <= 1.0:
            raise ValueError(f"hflip_p must be in [0, 1], got {hflip_p}")
        rate = audio_length * fps / frames
        if rate / 2 <= _SEARCH_HIGH:
            raise ValueError(
                f"audio_length * fps / frames = {rate:g} Hz is too low for tones up to {F_HIGH:g} Hz "
                f"(needs > {2 * _SEARCH_HIGH:g} Hz)"
            )
        self.num_clips, self.frames, self.size = num_clips, frames, size
        self.audio_length, self.fps, self.seed, self.hflip_p = (
            audio_length,
            float(fps),
            seed,
            hflip_p,
        )
        self.audio_rate: float | int = int(rate) if float(rate).is_integer() else rate

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.get(index)

    def get(
        self, index: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip `index` -> (video [F, 3, S, S], audio [1, L]); flipped left-right with probability
        `hflip_p` using one draw from `generator` (no draw and no flip without a generator)."""
        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f"clip index {index} out of range for {self.num_clips} clips")
        index %= self.num_clips
        flip = generator is not None and torch.rand((), generator=generator).item() < self.hflip_p
        scene = _Scene.draw(_clip_generator(self.seed, index), self.frames / self.fps)
        video = scene.render(self.frames, self.size, self.fps)
        audio = scene.sound(self.audio_length, self.audio_rate, scene.noise)
        return (video.flip(-1) if flip else video), audio


def _clip_generator(seed: int, index: int) -> torch.Generator:
    """A generator for clip `index` of `seed`: a hash, so nearby (seed, index) pairs are unrelated."""
    digest = hashlib.blake2b(f"mmfast-synthetic:{seed}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


class _Scene:
    """One clip's world: the ball's motion over time and the randomness of its sound."""

    def __init__(
        self,
        apexes: list[float],
        first: float,
        x0: float,
        vx: float,
        tone_phase: float,
        noise: torch.Generator,
    ) -> None:
        periods = torch.tensor([_period(a) for a in apexes], dtype=torch.float64)
        self.apexes = torch.tensor(apexes, dtype=torch.float64)
        self.periods = periods
        self.contacts = first + torch.cumsum(periods, 0) - periods  # [n] floor contact instants
        self.x0, self.vx, self.tone_phase, self.noise = x0, vx, tone_phase, noise

    @classmethod
    def draw(cls, g: torch.Generator, seconds: float) -> _Scene:
        """Bounces that cover [0, seconds): the first one is already under way at t = 0."""
        count = math.ceil(seconds / _period(APEX_LOW)) + 2
        u = torch.rand(count + 5, generator=g, dtype=torch.float64).tolist()
        apexes = [APEX_LOW + (APEX_HIGH - APEX_LOW) * v for v in u[:count]]
        first = -u[count] * _period(apexes[0])
        speed = (0.25 + 0.35 * u[count + 1]) * (1 if u[count + 2] < 0.5 else -1)  # widths / s
        return cls(apexes, first, u[count + 3], speed, 2 * math.pi * u[count + 4], g)

    def height(self, t: torch.Tensor) -> torch.Tensor:
        """h(t): a parabola from each floor contact to the next, peaking at that bounce's apex."""
        i = (torch.searchsorted(self.contacts, t, right=True) - 1).clamp(0, len(self.contacts) - 1)
        tau, period = t - self.contacts[i], self.periods[i]
        return (4.0 * self.apexes[i] / period**2 * tau * (period - tau)).clamp_min(0.0)

    def across(self, t: torch.Tensor) -> torch.Tensor:
        """x(t) in [0, 1]: constant speed, reflected at the walls (a triangle wave)."""
        u = torch.remainder(self.x0 + self.vx * t, 2.0)
        return torch.where(u > 1.0, 2.0 - u, u)

    def bounces(self, seconds: float) -> list[float]:
        """Instants in [0, seconds) of floor and wall contacts."""
        floor = self.contacts.tolist()
        # Walls: x0 + vx t crosses an integer (x = 0 or 1).
        lo, hi = sorted((self.x0, self.x0 + self.vx * seconds))
        walls = [(n - self.x0) / self.vx for n in range(math.ceil(lo), math.floor(hi) + 1)]
        return sorted(t for t in floor + walls if 0.0 <= t < seconds)

    def render(self, frames: int, size: int, fps: float) -> torch.Tensor:
        """[frames, 3, size, size] float32 in [-1, 1]: frame k at k / fps, antialiased ball."""
        t = torch.arange(frames, dtype=torch.float64) / fps
        radius = RADIUS * size
        travel = size - 1 - 2 * radius
        cx = radius + self.across(t) * travel  # [F], pixel centres
        cy = (size - 1 - radius) - self.height(t) * travel
        pix = torch.arange(size, dtype=torch.float64)
        dist = torch.sqrt(
            (pix[None, None, :] - cx[:, None, None]) ** 2
            + (pix[None, :, None] - cy[:, None, None]) ** 2
        )  # [F, H, W]
        cover = (radius + 0.5 - dist).clamp(0.0, 1.0)[:, None]  # [F, 1, H, W]
        bg = torch.tensor(BACKGROUND, dtype=torch.float64)[None, :, None, None]
        ball = torch.tensor(BALL, dtype=torch.float64)[None, :, None, None]
        return (bg + (ball - bg) * cover).to(torch.float32)

    def sound(self, length: int, rate: float, g: torch.Generator) -> torch.Tensor:
        """[1, length] float32 in [-1, 1]: the height-pitched tone plus a click per bounce."""
        t = torch.arange(length, dtype=torch.float64) / rate
        freq = pitch_of_height(self.height(t))
        # Phase is the running integral of frequency: the pitch glides without discontinuities.
        phase = self.tone_phase + 2 * math.pi * (torch.cumsum(freq, 0) - freq[0]) / rate
        audio = TONE_AMPLITUDE * torch.sin(phase)
        burst = max(1, round(6 * CLICK_DECAY * rate))
        decay = torch.exp(-torch.arange(burst, dtype=torch.float64) / (CLICK_DECAY * rate))
        for when in self.bounces(length / rate):
            at = round(when * rate)
            noise = torch.rand(burst, generator=g, dtype=torch.float64) * 2 - 1
            n = min(burst, length - at)
            audio[at : at + n] += CLICK_AMPLITUDE * decay[:n] * noise[:n]
        return audio.clamp(-1.0, 1.0).to(torch.float32)[None]


def _period(apex: float) -> float:
    """Time from floor to floor of a bounce reaching `apex` under GRAVITY."""
    return 2.0 * math.sqrt(2.0 * apex / GRAVITY)


def pitch_of_height(height: torch.Tensor) -> torch.Tensor:
    """The synthetic rule: height in [0, 1] -> tone frequency in Hz, F_LOW .. F_HIGH."""
    return F_LOW * (F_HIGH / F_LOW) ** height


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
    band = torch.nonzero((freqs >= _SEARCH_LOW) & (freqs <= min(_SEARCH_HIGH, audio_rate / 2)))
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
