"""DDPM ancestral sampling with respacing (Ho et al. 2020; improved DDPM's respacing)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmfast.choice import Choice
from mmfast.diffusion.base import (
    CLEAN,
    DiscreteSteps,
    History,
    StepContext,
    Transition,
    denoise,
)
from mmfast.diffusion.learned_variance import learned_log_variance


class Variance(Choice):
    LARGE = "large"  # beta_t of the respaced process (the release's fixed variance)
    SMALL = "small"  # the posterior variance beta_t (1 - alpha_bar_s) / (1 - alpha_bar_t)
    LEARNED = "learned"  # the model's interpolation between the two in log space (learned range)


@dataclass(frozen=True)
class DDPM(DiscreteSteps):
    """x_s ~ q(x_s | x_t, x0 = x0_hat(x_t)); `steps` < T respaces the chain.

    The variance is fixed (large or small) or, for a model that predicts it (the SR stage),
    learned: log var = f log(beta) + (1 - f) log(posterior var) with f = (v + 1) / 2, on the
    respaced chain. clip_denoised clips x0_hat to [-1, 1] (the release's default).
    """

    variance: Variance = Variance.LARGE
    clip_denoised: bool = True
    timesteps: str = "uniform"  # or "release" ("ddimN"), or a respacing ("50", "ddim25", ...)
    name: str = "ddpm"

    def step(
        self, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]:
        acp_t, acp_s, x0, _, v = denoise(ctx, x, tr, self.clip_denoised)
        beta = 1 - acp_t / acp_s
        mean = (math.sqrt(acp_s) * beta / (1 - acp_t)) * x0 + (
            math.sqrt(1 - beta) * (1 - acp_s) / (1 - acp_t)
        ) * x
        if tr.s == CLEAN:
            if ctx.draw_always:
                ctx.randn_like(x)
            return mean, history
        posterior = beta * (1 - acp_s) / (1 - acp_t)
        kind = Variance(self.variance)
        if kind is Variance.LEARNED:
            if v is None:
                raise ValueError("variance='learned' needs a model that predicts its variance")
            log_var = learned_log_variance(v, math.log(beta), math.log(posterior))
            return mean + torch.exp(0.5 * log_var) * ctx.randn_like(x), history
        var = beta if kind is Variance.LARGE else posterior
        return mean + math.sqrt(var) * ctx.randn_like(x), history
