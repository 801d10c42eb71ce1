"""A (video, audio) pair as one flat state [B, Nv + Na], so that samplers are written once for a
single tensor; the denoiser still sees the two modalities in their own shapes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

import torch
from torch import Tensor

from mmfast.diffusion.prediction import Prediction, check_prediction, eps_from_prediction
from mmfast.diffusion.schedule import NoiseSchedule

# denoiser(video_t, audio_t, t) -> (eps_video, eps_audio) (or the v / x0 predictions of a model
# trained for them); t: float [B] on the 0..T-1 scale.
Denoiser = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
MODALITIES = ("video", "audio")


@dataclass(frozen=True)
class PairLayout:
    """Shapes of the two modalities, batch first: video [B, ...], audio [B, ...]."""

    video_shape: tuple[int, ...]
    audio_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.video_shape[0] != self.audio_shape[0]:
            raise ValueError(
                f"video and audio batch sizes differ: {self.video_shape} and {self.audio_shape}"
            )

    @property
    def batch(self) -> int:
        return self.video_shape[0]

    @property
    def sizes(self) -> tuple[int, int]:
        return prod(self.video_shape[1:]), prod(self.audio_shape[1:])

    def part(self, modality: str) -> slice:
        """Columns of the flat state that hold `modality`."""
        nv, na = self.sizes
        return {"video": slice(0, nv), "audio": slice(nv, nv + na)}[modality]

    def join(self, video: Tensor, audio: Tensor) -> Tensor:
        return torch.cat([video.reshape(self.batch, -1), audio.reshape(self.batch, -1)], dim=1)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        nv, _ = self.sizes
        return x[:, :nv].reshape(self.video_shape), x[:, nv:].reshape(self.audio_shape)


def flat_eps_fn(
    denoiser: Denoiser,
    layout: PairLayout,
    integer_time: bool = False,
    prediction: str = "eps",
    schedule: NoiseSchedule | None = None,
) -> Callable[[Tensor, float], Tensor]:
    """eps(x, tau) on the flat state, in x's dtype. tau: a float time for the whole batch.

    integer_time truncates tau toward zero before the call, as the release's DPM-Solver did.
    prediction: what the denoiser returns; "v" and "x0" are converted to eps at the state's own
    time tau with `schedule`'s (alpha, sigma).
    """
    kind = check_prediction(prediction)
    if kind is not Prediction.EPS and schedule is None:
        raise ValueError(f"converting a {prediction!r} prediction to eps needs the schedule")

    def eps(x: Tensor, tau: float) -> Tensor:
        t = torch.full((layout.batch,), float(tau), device=x.device, dtype=torch.float32)
        if integer_time:
            t = torch.trunc(t)
        video, audio = layout.split(x)
        eps_v, eps_a = denoiser(video, audio, t)
        if eps_v.shape != video.shape or eps_a.shape != audio.shape:
            raise ValueError(
                f"the denoiser returned shapes {tuple(eps_v.shape)}, {tuple(eps_a.shape)}; expected "
                f"{tuple(video.shape)}, {tuple(audio.shape)}"
            )
        out = layout.join(eps_v.to(x.dtype), eps_a.to(x.dtype))
        if kind is Prediction.EPS:
            return out
        alpha, sigma = (float(s) for s in schedule.alpha_sigma(tau))
        return eps_from_prediction(kind, out, x, alpha, sigma)

    return eps
