"""DPM-Solver++(2M) (Lu et al. 2022b): multistep, data prediction, optional dynamic thresholding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmfast.diffusion.base import History, StepContext, Transition, predict_x0
from mmfast.diffusion.pair import MODALITIES
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.diffusion.spacing import Spacing, check_continuous_timesteps, continuous_timesteps


@dataclass(frozen=True)
class DPMSolverPP:
    """order 1 is DDIM in log-SNR; order 2 is 2M. thresholding clips each modality's x0 prediction
    to the per-sample `threshold_quantile` of |x0| (at least `threshold_max`) and rescales it.
    timesteps "release" is DPM-Solver's own multistep grid, which is the logsnr spacing."""

    order: int = 2
    spacing: Spacing = Spacing.LOGSNR
    lower_order_final: bool = True
    thresholding: bool = False
    threshold_quantile: float = 0.995
    threshold_max: float = 1.0
    timesteps: str = "uniform"
    name: str = "dpm-solver++"

    def __post_init__(self) -> None:
        if self.order not in (1, 2):
            raise ValueError(f"DPM-Solver++ (multistep) order must be 1 or 2, got {self.order}")

    def plan(self, schedule: NoiseSchedule, steps: int) -> list[Transition]:
        check_continuous_timesteps(self.timesteps, self.spacing)
        taus = continuous_timesteps(schedule, steps, self.spacing)
        plan = []
        for i in range(1, steps + 1):
            order = min(self.order, i)
            if self.lower_order_final and steps < 10:
                order = min(order, steps + 1 - i)
            plan.append(Transition(taus[i - 1], taus[i], order))
        return plan

    def _threshold(self, ctx: StepContext, x0: Tensor) -> Tensor:
        out = x0.clone()
        for modality in MODALITIES:
            part = ctx.layout.part(modality)
            values = x0[:, part]
            s = torch.quantile(values.abs().float(), self.threshold_quantile, dim=1, keepdim=True)
            s = s.clamp(min=self.threshold_max).to(values.dtype)
            out[:, part] = torch.maximum(torch.minimum(values, s), -s) / s
        return out

    def step(
        self, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]:
        alpha_t, sigma_t, lam_t = ctx.scalars(tr.t)
        alpha_s, sigma_s, lam_s = ctx.scalars(tr.s)
        h = lam_s - lam_t
        x0 = predict_x0(x, ctx.eps(x, tr.t), alpha_t, sigma_t)
        if self.thresholding:
            x0 = self._threshold(ctx, x0)
        phi_1 = math.expm1(-h)
        out = (sigma_s / sigma_t) * x - alpha_s * phi_1 * x0
        if tr.order == 2:
            tau_prev, x0_prev = history[-1]
            r0 = (lam_t - float(ctx.schedule.lambda_(tau_prev))) / h
            out = out - 0.5 * alpha_s * phi_1 * (x0 - x0_prev) / r0
        return out, ((tr.t, x0),)
