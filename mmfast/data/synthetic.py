"""The built-in synthetic audio-visual task (its scores are in `mmfast.eval.synthetic`).

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

`mmfast.eval.synthetic.av_sync_score` checks the tone rule on any clip, generated ones too.
"""

from __future__ import annotations

import hashlib
import math

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
# The band the sync score searches for the tone, a little beyond the one it can take: the clips'
# audio rate must carry it.
SEARCH_LOW, SEARCH_HIGH = F_LOW / 1.25, F_HIGH * 1.25


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
        if rate / 2 <= SEARCH_HIGH:
            raise ValueError(
                f"audio_length * fps / frames = {rate:g} Hz is too low for tones up to {F_HIGH:g} Hz "
                f"(needs > {2 * SEARCH_HIGH:g} Hz)"
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
