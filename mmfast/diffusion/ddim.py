"""DDIM (Song et al. 2021): eta = 0 is deterministic, eta = 1 matches DDPM's small variance."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from mmfast.diffusion.base import CLEAN, History, StepContext, Transition, predict_x0
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.diffusion.spacing import discrete_plan


@dataclass(frozen=True)
class DDIM:
    """x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma z,
    sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)."""

    eta: float = 0.0
    clip_denoised: bool = True
    name: str = "ddim"

    def plan(self, schedule: NoiseSchedule, steps: int) -> list[Transition]:
        return [Transition(t, s) for t, s in discrete_plan(schedule.num_timesteps, steps)]

    def step(
        self, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]:
        acp_t = float(ctx.schedule.alpha_bar(tr.t))
        acp_s = float(ctx.schedule.alpha_bar(tr.s))
        alpha_t, sigma_t = math.sqrt(acp_t), math.sqrt(1 - acp_t)
        eps = ctx.eps(x, tr.t)
        x0 = predict_x0(x, eps, alpha_t, sigma_t)
        if self.clip_denoised:
            x0 = x0.clamp(-1, 1)
            eps = (x - alpha_t * x0) / sigma_t
        sigma = self.eta * math.sqrt((1 - acp_s) / (1 - acp_t)) * math.sqrt(1 - acp_t / acp_s)
        out = math.sqrt(acp_s) * x0 + math.sqrt(max(1 - acp_s - sigma**2, 0.0)) * eps
        if sigma > 0 and tr.s != CLEAN:
            out = out + sigma * ctx.randn_like(x)
        return out, history
