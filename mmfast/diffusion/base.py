"""What every sampler provides: a plan of transitions between times, and one step along it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from mmfast.diffusion.pair import PairLayout
from mmfast.diffusion.schedule import NoiseSchedule

# eps(x, tau) -> predicted noise, x and result [B, N] (the flat pair state).
EpsFn = Callable[[Tensor, float], Tensor]
# The model outputs a multistep sampler remembers: ((tau, prediction), ...), oldest first.
History = tuple[tuple[float, Tensor], ...]

CLEAN = -1.0  # the time of clean data: alpha_bar = 1


@dataclass(frozen=True)
class Transition:
    """One step from time `t` to the earlier time `s` (CLEAN = data), with the solver order."""

    t: float
    s: float
    order: int = 1


@dataclass(frozen=True)
class StepContext:
    """What a step may use: the noise predictor, the schedule, the pair layout, the generator."""

    eps: EpsFn
    schedule: NoiseSchedule
    layout: PairLayout
    generator: torch.Generator | None = None

    def randn_like(self, x: Tensor) -> Tensor:
        dev = self.generator.device if self.generator is not None else x.device
        return torch.randn(x.shape, generator=self.generator, device=dev, dtype=x.dtype).to(
            x.device
        )

    def scalars(self, tau: float) -> tuple[float, float, float]:
        """(alpha, sigma, lambda) at tau as Python floats (from float64)."""
        alpha, sigma = self.schedule.alpha_sigma(tau)
        return (
            float(alpha),
            float(sigma),
            float(self.schedule.lambda_(tau)) if tau > CLEAN else float("inf"),
        )


class Sampler(Protocol):
    """A sampler is a plan and a step; all state between steps is in the returned history."""

    name: str

    def plan(self, schedule: NoiseSchedule, steps: int) -> list[Transition]: ...

    def step(
        self, ctx: StepContext, x: Tensor, tr: Transition, history: History
    ) -> tuple[Tensor, History]: ...


def predict_x0(x: Tensor, eps: Tensor, alpha: float, sigma: float) -> Tensor:
    """The data prediction implied by a noise prediction."""
    return (x - sigma * eps) / alpha
