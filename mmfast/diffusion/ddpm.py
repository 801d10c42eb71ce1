"""DDPM ancestral sampling with respacing (Ho et al. 2020; improved DDPM's respacing)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from torch import Tensor

from mmfast.diffusion.base import (
    CLEAN,
    History,
    StepContext,
    Transition,
    denoise,
    discrete_transitions,
)
from mmfast.diffusion.schedule import NoiseSchedule


class Variance(str, Enum):
    LARGE = "large"  # beta_t of the respaced process (the release's fixed variance)
    SMALL = "small"  # the posterior variance beta_t (1 - alpha_bar_s) / (1 - alpha_bar_t)


@dataclass(frozen=True)
class DDPM:
    """x_s ~ q(x_s | x_t, x0 = x0_hat(x_t)) with fixed variance; `steps` < T respaces the chain.

    clip_denoised clips x0_hat to [-1, 1] (the release's default for data in [-1, 1]).
    """

    variance: Variance = Variance.LARGE
    clip_denoised: bool = True
    name: str = "ddpm"

    def plan(self, schedule: NoiseSchedule, steps: int) -> list[Transition]:
        return discrete_transitions(schedule, steps)

    def step(
        self, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]:
        acp_t, acp_s, x0, _ = denoise(ctx, x, tr, self.clip_denoised)
        beta = 1 - acp_t / acp_s
        mean = (math.sqrt(acp_s) * beta / (1 - acp_t)) * x0 + (
            math.sqrt(1 - beta) * (1 - acp_s) / (1 - acp_t)
        ) * x
        if tr.s == CLEAN:
            return mean, history
        var = (
            beta if Variance(self.variance) is Variance.LARGE else beta * (1 - acp_s) / (1 - acp_t)
        )
        return mean + math.sqrt(var) * ctx.randn_like(x), history
