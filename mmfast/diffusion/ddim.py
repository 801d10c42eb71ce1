"""DDIM (Song et al. 2021): eta = 0 is deterministic, eta = 1 matches DDPM's small variance."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from mmfast.diffusion.base import (
    CLEAN,
    DiscreteSteps,
    History,
    StepContext,
    Transition,
    denoise,
)


@dataclass(frozen=True)
class DDIM(DiscreteSteps):
    """x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma z,
    sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)."""

    eta: float = 0.0
    clip_denoised: bool = True
    timesteps: str = "uniform"  # or "release" ("ddimN"), or a respacing ("50", "ddim25", ...)
    name: str = "ddim"

    def step(
        self, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]:
        acp_t, acp_s, x0, eps, _ = denoise(ctx, x, tr, self.clip_denoised)
        sigma = self.eta * math.sqrt((1 - acp_s) / (1 - acp_t)) * math.sqrt(1 - acp_t / acp_s)
        out = math.sqrt(acp_s) * x0 + math.sqrt(max(1 - acp_s - sigma**2, 0.0)) * eps
        if ctx.draw_always or (sigma > 0 and tr.s != CLEAN):
            z = ctx.randn_like(x)
            if sigma > 0 and tr.s != CLEAN:
                out = out + sigma * z
        return out, history
