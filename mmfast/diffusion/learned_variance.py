"""Diffusion with a learned variance (improved DDPM's "learned range", the release's SR stage):
the model predicts eps and values v in [-1, 1] that set log var = f log(beta_t) + (1 - f) log(beta~_t),
f = (v + 1) / 2, between the two fixed choices. Trained with the hybrid loss: the eps MSE plus the
variational bound term, whose gradient reaches only v (the eps in it is detached)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from mmfast.diffusion.schedule import NoiseSchedule

# denoiser(x_t, t) -> [B, 2C, ...]: eps (the first C channels), then v.
LearnedDenoiser = Callable[[Tensor, Tensor], Tensor]


def learned_log_variance(v: Tensor, log_beta, log_posterior) -> Tensor:
    """log var = f log_beta + (1 - f) log_posterior with f = (v + 1) / 2 (tensors or floats)."""
    frac = (v + 1) / 2
    return frac * log_beta + (1 - frac) * log_posterior


def split_learned(out: Tensor) -> tuple[Tensor, Tensor]:
    """[B, 2C, ...] -> (eps [B, C, ...], v [B, C, ...])."""
    if out.shape[1] % 2:
        raise ValueError(f"a learned-variance output has 2C channels, got {tuple(out.shape)}")
    return out.chunk(2, dim=1)


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )  # fmt: skip


def _standard_normal_cdf(x: Tensor) -> Tensor:
    """The tanh approximation of the standard normal CDF that improved DDPM (and the release) use."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(x) per element of 8-bit data x in [-1, 1] under N(mean, e^(2 log_scale)) integrated over
    each value's bin of width 2/255 (the edge bins extend to infinity)."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )


def _mean_flat(x: Tensor) -> Tensor:
    return x.flatten(1).mean(dim=1)


class HybridLoss(NamedTuple):
    loss: Tensor  # mean over the batch of mse + vb: the one to backpropagate
    mse: Tensor  # mean eps MSE
    vb: Tensor  # mean variational-bound term, in bits per dimension


def posterior_terms(schedule: NoiseSchedule, t: Tensor, shape: tuple[int, ...]):
    """Per-sample (coef_x0, coef_xt, log posterior variance (clipped at t = 0), log beta) of
    q(x_{t-1} | x_t, x0) for integer timesteps t [B], shaped to broadcast over `shape`."""
    betas = schedule.betas.to(torch.float64)
    acp = torch.cumprod(1 - betas, 0)
    acp_prev = torch.cat([acp.new_ones(1), acp[:-1]])
    posterior = betas * (1 - acp_prev) / (1 - acp)
    # At t = 0 the posterior variance is 0; improved DDPM uses the one at t = 1 there.
    log_posterior = torch.log(torch.cat([posterior[1:2], posterior[1:]]))
    coef_x0 = betas * torch.sqrt(acp_prev) / (1 - acp)
    coef_xt = (1 - acp_prev) * torch.sqrt(1 - betas) / (1 - acp)
    view = (-1,) + (1,) * (len(shape) - 1)
    idx = t.to(betas.device).long()
    return tuple(
        c[idx].view(view).float() for c in (coef_x0, coef_xt, log_posterior, torch.log(betas))
    )


def hybrid_loss(
    denoiser: LearnedDenoiser,
    x0: Tensor,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator | None = None,
    timesteps: Tensor | None = None,
    noise: Tensor | None = None,
) -> HybridLoss:
    """Improved DDPM's hybrid objective on a clean batch x0 [B, C, ...] in [-1, 1]: per sample,
    mean eps MSE + (the KL of the true posterior to the model's, or at t = 0 the decoder's
    negative log-likelihood, in bits per dimension, with eps detached); the mean over the batch.

    timesteps: [B] integers in [0, T), drawn uniformly from `generator` when None.
    """
    b = x0.shape[0]
    gen_device = generator.device if generator is not None else x0.device
    if timesteps is None:
        timesteps = torch.randint(
            0, schedule.num_timesteps, (b,), generator=generator, device=gen_device
        )
    timesteps = timesteps.to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype)
    noise = noise.to(x0.device)
    x_t = schedule.add_noise(x0, noise, timesteps.to(schedule.device))
    eps, v = split_learned(denoiser(x_t, timesteps.float()))
    if eps.shape != x0.shape:
        raise ValueError(
            f"the denoiser gave eps of shape {tuple(eps.shape)} for x0 {tuple(x0.shape)}"
        )
    eps, v = eps.float(), v.float()
    mse = _mean_flat((noise.float() - eps) ** 2)

    coef_x0, coef_xt, log_posterior, log_beta = posterior_terms(schedule, timesteps, x0.shape)
    acp = schedule.alpha_bar(timesteps.to(schedule.device)).to(x0.device).float()
    acp = acp.view((-1,) + (1,) * (x0.dim() - 1))
    x_t32, x0_32 = x_t.float(), x0.float()
    x0_hat = (x_t32 - torch.sqrt(1 - acp) * eps.detach()) / torch.sqrt(acp)
    true_mean = coef_x0 * x0_32 + coef_xt * x_t32
    model_mean = coef_x0 * x0_hat + coef_xt * x_t32
    model_log_var = learned_log_variance(v, log_beta, log_posterior)
    kl = _mean_flat(normal_kl(true_mean, log_posterior, model_mean, model_log_var)) / math.log(2)
    nll = -_mean_flat(
        discretized_gaussian_log_likelihood(x0_32, model_mean, 0.5 * model_log_var)
    ) / math.log(2)
    vb = torch.where(timesteps == 0, nll, kl)
    return HybridLoss((mse + vb).mean(), mse.mean(), vb.mean())
