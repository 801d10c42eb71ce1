"""Which times a sampler visits: discrete respacing (DDPM, DDIM) and continuous spacings
(DPM-Solver). All times are on the model's 0..T-1 scale, descending."""

from __future__ import annotations

from enum import Enum

import torch

from mmfast.diffusion.schedule import NoiseSchedule


class Spacing(str, Enum):
    """How DPM-Solver spaces its steps between tau = T-1 and tau = 0."""

    LOGSNR = "logsnr"  # uniform in half log-SNR (the release's spacing)
    TIME_UNIFORM = "time-uniform"  # uniform in t_continuous = (tau + 1) / T
    TIME_QUADRATIC = "time-quadratic"  # uniform in sqrt(t_continuous)


DISCRETE_TIMESTEPS = ("uniform", "release")


def discrete_timesteps(num_timesteps: int, steps: int, kind: str = "uniform") -> list[int]:
    """`steps` integer timesteps, descending.

    "uniform": from T-1 down to 0, evenly strided and rounded (improved DDPM's respacing with one
    section). "release": guided-diffusion's "ddimN" respacing, which the release's DDIM sampling
    used: range(0, T, k) for the smallest stride k that gives exactly `steps` times (T = 1000,
    25 steps: 960, 920, ..., 0).
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    if kind == "release":
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == steps:
                return list(range(0, num_timesteps, stride))[::-1]
        raise ValueError(f"no stride gives exactly {steps} of {num_timesteps} timesteps")
    if kind != "uniform":
        raise ValueError(f"timesteps must be one of {DISCRETE_TIMESTEPS}, got {kind!r}")
    if steps == 1:
        return [num_timesteps - 1]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)}, reverse=True)


def discrete_plan(
    num_timesteps: int, steps: int, kind: str = "uniform"
) -> list[tuple[float, float]]:
    """(t, s) pairs of DDPM/DDIM: the respaced timesteps, the last one stepping to clean data (-1)."""
    taus = [float(t) for t in discrete_timesteps(num_timesteps, steps, kind)] + [-1.0]
    return list(zip(taus[:-1], taus[1:]))


def check_continuous_timesteps(timesteps: str, spacing: Spacing | str) -> bool:
    """Whether a DPM-Solver's `timesteps` option asks for the release's grid (which is logSNR
    spaced); a ValueError for an unknown value or "release" beside another spacing."""
    if timesteps not in DISCRETE_TIMESTEPS:
        raise ValueError(f"timesteps must be one of {DISCRETE_TIMESTEPS}, got {timesteps!r}")
    if timesteps == "release" and Spacing(spacing) is not Spacing.LOGSNR:
        raise ValueError(
            f"timesteps='release' is logSNR-spaced; it cannot go with spacing={spacing!r}"
        )
    return timesteps == "release"


def continuous_timesteps(
    schedule: NoiseSchedule, steps: int, spacing: Spacing | str
) -> list[float]:
    """`steps + 1` float times from T-1 down to 0 (t_continuous from 1 down to 1/T)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    spacing = Spacing(spacing)
    n = schedule.num_timesteps
    t_start, t_end = 1.0, 1.0 / n  # t_continuous
    if spacing is Spacing.LOGSNR:
        lam = torch.linspace(
            float(schedule.lambda_(n - 1)),
            float(schedule.lambda_(0.0)),
            steps + 1,
            dtype=torch.float64,
        )
        taus = schedule.tau_from_lambda(lam.to(schedule.device)).tolist()
    elif spacing is Spacing.TIME_UNIFORM:
        taus = [
            t * n - 1
            for t in torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()
        ]
    else:
        root = torch.linspace(t_start**0.5, t_end**0.5, steps + 1, dtype=torch.float64)
        taus = [t * n - 1 for t in (root**2).tolist()]
    taus[0], taus[-1] = float(n - 1), 0.0  # exact ends, whatever the round-off
    return taus
