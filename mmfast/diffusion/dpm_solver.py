"""DPM-Solver (Lu et al. 2022), noise prediction, single-step, orders 1-3: the release's default
sampler (order 3, 20 steps, logSNR spacing; `timesteps="release"` for its exact grid)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmfast.diffusion.base import History, StepContext, Transition
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.diffusion.spacing import Spacing, check_continuous_timesteps, continuous_timesteps


def singlestep_orders(steps: int, order: int) -> list[int]:
    """Orders of the segments that spend exactly `steps` model calls (DPM-Solver's rule)."""
    if order == 3:
        k = steps // 3 + 1
        tail = {0: [2, 1], 1: [1], 2: [2]}[steps % 3]
        orders = [3] * (k - 1 - (steps % 3 == 0)) + tail
    elif order == 2:
        orders = [2] * (steps // 2) + [1] * (steps % 2)
    elif order == 1:
        orders = [1] * steps
    else:
        raise ValueError(f"DPM-Solver order must be 1, 2 or 3, got {order}")
    return orders


@dataclass(frozen=True)
class DPMSolver:
    """Segments of order `order` (the last ones lower) that spend exactly `steps` model calls.

    timesteps "uniform": with logSNR spacing, the segments' ends are uniform in logSNR (the DPM-
    Solver paper's rule); other spacings place `steps + 1` points and the segments skip through
    them. "release": the release's grid, `steps + 1` points uniform in logSNR with the segments
    skipping through them (20 steps: segments from point 0 to 3, 6, ..., 18, 20)."""

    order: int = 3
    spacing: Spacing = Spacing.LOGSNR
    timesteps: str = "uniform"
    name: str = "dpm-solver"

    def plan(self, schedule: NoiseSchedule, steps: int) -> list[Transition]:
        release = check_continuous_timesteps(self.timesteps, self.spacing)
        orders = singlestep_orders(steps, self.order)
        if Spacing(self.spacing) is Spacing.LOGSNR and not release:
            taus = continuous_timesteps(schedule, len(orders), self.spacing)
        else:
            fine = continuous_timesteps(schedule, steps, self.spacing)
            taus = [fine[i] for i in torch.cumsum(torch.tensor([0, *orders]), 0).tolist()]
        return [Transition(t, s, k) for t, s, k in zip(taus[:-1], taus[1:], orders)]

    def step(
        self, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]:
        sched = ctx.schedule
        alpha_t, _, lam_t = ctx.scalars(tr.t)
        alpha_s, sigma_s, lam_s = ctx.scalars(tr.s)
        h = lam_s - lam_t
        eps_t = ctx.eps(x, tr.t)
        if tr.order == 1:
            return (alpha_s / alpha_t) * x - sigma_s * math.expm1(h) * eps_t, history

        def intermediate(r: float, eps_terms: Tensor) -> tuple[Tensor, float]:
            tau = float(
                sched.tau_from_lambda(
                    torch.tensor(lam_t + r * h, dtype=torch.float64, device=sched.device)
                )
            )
            alpha_m, sigma_m, _ = ctx.scalars(tau)
            return (alpha_m / alpha_t) * x - sigma_m * eps_terms, tau

        if tr.order == 2:
            r1 = 0.5
            x1, tau1 = intermediate(r1, math.expm1(r1 * h) * eps_t)
            eps_1 = ctx.eps(x1, tau1)
            phi_1 = math.expm1(h)
            out = (
                (alpha_s / alpha_t) * x
                - sigma_s * phi_1 * eps_t
                - (0.5 / r1) * sigma_s * phi_1 * (eps_1 - eps_t)
            )
            return out, history

        r1, r2 = 1.0 / 3.0, 2.0 / 3.0
        x1, tau1 = intermediate(r1, math.expm1(r1 * h) * eps_t)
        eps_1 = ctx.eps(x1, tau1)
        phi_22 = math.expm1(r2 * h) / (r2 * h) - 1.0
        x2, tau2 = intermediate(
            r2, math.expm1(r2 * h) * eps_t + (r2 / r1) * phi_22 * (eps_1 - eps_t)
        )
        eps_2 = ctx.eps(x2, tau2)
        phi_1 = math.expm1(h)
        phi_2 = phi_1 / h - 1.0
        out = (
            (alpha_s / alpha_t) * x
            - sigma_s * phi_1 * eps_t
            - (1.0 / r2) * sigma_s * phi_2 * (eps_2 - eps_t)
        )
        return out, history
