"""What every sampler provides: a plan of transitions between times, and one step along it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from mmfast.diffusion.pair import PairLayout
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.diffusion.spacing import check_discrete_timesteps, discrete_plan

# eps(x, tau) -> predicted noise, x and result [B, N] (the flat pair state).
EpsFn = Callable[[Tensor, float], Tensor]
# predict(x, tau) -> (eps, variance values v in [-1, 1]) of a learned-variance model.
LearnedFn = Callable[[Tensor, float], tuple[Tensor, Tensor]]
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
    """What a step may use: the noise predictor, the schedule, the pair layout (None for a single
    image state), the generator. `learned`, for models that also predict their variance, gives
    (eps, v) in one call (`eps` then gives the same eps). `noise`, when given, draws every step's
    noise instead of `generator` (e.g. noise shared by the frames of a clip, or the release's
    per-modality order). `draw_always`: ancestral samplers draw a step's noise even where it is
    multiplied by zero (the release does, so that a seed's later draws line up with it)."""

    eps: EpsFn
    schedule: NoiseSchedule
    layout: PairLayout | None
    generator: torch.Generator | None = None
    learned: LearnedFn | None = None
    noise: Callable[[Tensor], Tensor] | None = None
    draw_always: bool = False

    def predict(self, x: Tensor, tau: float) -> tuple[Tensor, Tensor | None]:
        """(eps, learned variance values or None)."""
        if self.learned is not None:
            return self.learned(x, tau)
        return self.eps(x, tau), None

    def randn_like(self, x: Tensor) -> Tensor:
        if self.noise is not None:
            return self.noise(x)
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


class DiscreteSteps:
    """DDPM's and DDIM's plan (a mixin of the sampler dataclasses, which hold `timesteps`): the
    respaced integer timesteps (see `discrete_timesteps`) down to clean data."""

    timesteps: str

    def __post_init__(self) -> None:
        check_discrete_timesteps(self.timesteps)

    def plan(self, schedule: NoiseSchedule, steps: int | None) -> list[Transition]:
        pairs = discrete_plan(schedule.num_timesteps, steps, self.timesteps)
        return [Transition(t, s) for t, s in pairs]


class Denoised(NamedTuple):
    """One discrete step's model call: alpha_bar at both ends, x0_hat, eps_hat and, for a
    learned-variance model, its variance values v in [-1, 1] (else None)."""

    acp_t: float
    acp_s: float
    x0: Tensor
    eps: Tensor
    v: Tensor | None


def denoise(ctx: StepContext, x: Tensor, tr: Transition, clip: bool) -> Denoised:
    """The model's view of a discrete step t -> s. With `clip`, x0_hat is clipped to [-1, 1] and
    eps_hat re-derived from it."""
    acp_t, acp_s = float(ctx.schedule.alpha_bar(tr.t)), float(ctx.schedule.alpha_bar(tr.s))
    alpha_t, sigma_t = math.sqrt(acp_t), math.sqrt(1 - acp_t)
    eps, v = ctx.predict(x, tr.t)
    x0 = predict_x0(x, eps, alpha_t, sigma_t)
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x - alpha_t * x0) / sigma_t
    return Denoised(acp_t, acp_s, x0, eps, v)
