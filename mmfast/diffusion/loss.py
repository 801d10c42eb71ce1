"""The training objective of the release: one timestep per sample for both modalities, independent
noise per modality, loss = w_v * mean MSE(video eps) + w_a * mean MSE(audio eps)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfast.diffusion.pair import Denoiser
from mmfast.diffusion.schedule import NoiseSchedule


class DiffusionLoss(NamedTuple):
    loss: Tensor  # the weighted sum, the one to backpropagate
    video: Tensor  # mean squared error of the video noise prediction (unweighted)
    audio: Tensor


def diffusion_loss(
    denoiser: Denoiser,
    video: Tensor,
    audio: Tensor,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator | None = None,
    weights: tuple[float, float] = (1.0, 1.0),
    timesteps: Tensor | None = None,
) -> DiffusionLoss:
    """Epsilon-prediction loss on a clean batch. video: [B, ...], audio: [B, ...] in [-1, 1].

    timesteps: [B] integers in [0, T); drawn uniformly from `generator` when None.
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
    noise_v = torch.randn(
        video.shape, generator=generator, device=gen_device, dtype=video.dtype
    ).to(video.device)
    noise_a = torch.randn(
        audio.shape, generator=generator, device=gen_device, dtype=audio.dtype
    ).to(audio.device)
    tau = timesteps.to(schedule.device)
    eps_v, eps_a = denoiser(
        schedule.add_noise(video, noise_v, tau),
        schedule.add_noise(audio, noise_a, tau),
        timesteps.float(),
    )
    video_mse = F.mse_loss(eps_v.float(), noise_v.float())
    audio_mse = F.mse_loss(eps_a.float(), noise_a.float())
    return DiffusionLoss(weights[0] * video_mse + weights[1] * audio_mse, video_mse, audio_mse)
