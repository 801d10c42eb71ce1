"""The training objective of the coupled model: one timestep per sample for both modalities,
independent noise per modality, loss = w_v * MSE(video target) + w_a * MSE(audio target).

The release regresses the noise with uniform weight over timesteps. Also here: the v and x0
targets (see `prediction.py`) and min-SNR-gamma weighting (Hang et al. 2023), which weights every
timestep as min(SNR, gamma) times the x0 error, expressed for the chosen target:
  eps: min(SNR, gamma) / SNR,  v: min(SNR, gamma) / (SNR + 1),  x0: min(SNR, gamma).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mmfast.choice import Choice
from mmfast.diffusion.pair import Denoiser
from mmfast.diffusion.prediction import Prediction, check_prediction, prediction_target
from mmfast.diffusion.schedule import NoiseSchedule


class Weighting(Choice):
    UNIFORM = "uniform"  # the release
    MIN_SNR = "min-snr"


WEIGHTINGS = tuple(w.value for w in Weighting)


class DiffusionLoss(NamedTuple):
    loss: Tensor  # the weighted sum, the one to backpropagate
    video: Tensor  # mean squared error of the video target (unweighted)
    audio: Tensor
    timesteps: Tensor | None = None  # [B] the integer timesteps drawn
    sample_error: Tensor | None = None  # [B] each sample's video + audio error (unweighted)


def timestep_weights(
    schedule: NoiseSchedule,
    timesteps: Tensor,
    prediction: str = "eps",
    weighting: str = "uniform",
    gamma: float = 5.0,
) -> Tensor:
    """Per-sample loss weights [B] float32 for integer timesteps [B]."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"loss weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    kind = check_prediction(prediction)
    if Weighting(weighting) is Weighting.UNIFORM:
        return torch.ones(timesteps.shape, dtype=torch.float32, device=timesteps.device)
    if gamma <= 0:
        raise ValueError(f"min-SNR gamma must be positive, got {gamma}")
    acp = schedule.alpha_bar(timesteps.to(schedule.device))
    snr = acp / (1 - acp)
    clipped = snr.clamp(max=gamma)
    w = {Prediction.EPS: clipped / snr, Prediction.V: clipped / (snr + 1), Prediction.X0: clipped}
    return w[kind].to(torch.float32).to(timesteps.device)


def diffusion_loss(
    denoiser: Denoiser,
    video: Tensor,
    audio: Tensor,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator | None = None,
    weights: tuple[float, float] = (1.0, 1.0),
    timesteps: Tensor | None = None,
    prediction: str = "eps",
    weighting: str = "uniform",
    min_snr_gamma: float = 5.0,
) -> DiffusionLoss:
    """The loss on a clean batch. video: [B, ...], audio: [B, ...] in [-1, 1].

    timesteps: [B] integers in [0, T); drawn uniformly from `generator` when None.
    prediction: what the denoiser's outputs are ("eps", "v" or "x0"); weighting: "uniform" or
    "min-snr" (with `min_snr_gamma`). The loss is the batch mean of each sample's weighted MSE.
    """
    b = video.shape[0]
    if audio.shape[0] != b:
        raise ValueError(
            f"video and audio batch sizes differ: {video.shape[0]} and {audio.shape[0]}"
        )
    gen_device = generator.device if generator is not None else video.device
    if timesteps is None:
        timesteps = torch.randint(
            0, schedule.num_timesteps, (b,), generator=generator, device=gen_device
        )
    timesteps = timesteps.to(video.device)
    w = timestep_weights(schedule, timesteps, prediction, weighting, min_snr_gamma)
    noise_v = torch.randn(
        video.shape, generator=generator, device=gen_device, dtype=video.dtype
    ).to(video.device)
    noise_a = torch.randn(
        audio.shape, generator=generator, device=gen_device, dtype=audio.dtype
    ).to(audio.device)
    tau = timesteps.to(schedule.device)
    out_v, out_a = denoiser(
        schedule.add_noise(video, noise_v, tau),
        schedule.add_noise(audio, noise_a, tau),
        timesteps.float(),
    )
    alpha, sigma = (s.to(video.device, torch.float32) for s in schedule.alpha_sigma(tau))

    def per_sample_mse(out: Tensor, x0: Tensor, noise: Tensor) -> Tensor:
        shape = (-1,) + (1,) * (x0.dim() - 1)
        target = prediction_target(
            prediction, x0.float(), noise.float(), alpha.view(shape), sigma.view(shape)
        )
        return (out.float() - target).square().flatten(1).mean(1)

    mse_v = per_sample_mse(out_v, video, noise_v)
    mse_a = per_sample_mse(out_a, audio, noise_a)
    loss = (w * (weights[0] * mse_v + weights[1] * mse_a)).mean()
    return DiffusionLoss(loss, mse_v.mean(), mse_a.mean(), timesteps, (mse_v + mse_a).detach())
