"""Which times a sampler visits: discrete respacing (DDPM, DDIM) and continuous spacings
(DPM-Solver). All times are on the model's 0..T-1 scale, descending."""

from __future__ import annotations

import torch

from mmfast.choice import Choice
from mmfast.diffusion.schedule import NoiseSchedule


class Spacing(Choice):
    """How DPM-Solver spaces its steps between tau = T-1 and tau = 0."""

    LOGSNR = "logsnr"  # uniform in half log-SNR (the release's spacing)
    TIME_UNIFORM = "time-uniform"  # uniform in t_continuous = (tau + 1) / T
    TIME_QUADRATIC = "time-quadratic"  # uniform in sqrt(t_continuous)


DEFAULT_STEPS = 20
# DDPM's and DDIM's grids: mmfast's, the release's ("ddimN" with N = steps, and its draw order;
# see `sample`), or any of guided-diffusion's `timestep_respacing` strings.
UNIFORM, RELEASE = "uniform", "release"
CONTINUOUS_TIMESTEPS = (UNIFORM, RELEASE)


def is_respacing(timesteps: str) -> bool:
    """Whether `timesteps` is a guided-diffusion respacing string: "ddimN", "N" or "N,M,..."."""
    if timesteps.startswith("ddim"):
        return timesteps[4:].isdigit() and int(timesteps[4:]) > 0
    parts = timesteps.split(",")
    return all(p.strip().isdigit() for p in parts) and sum(int(p) for p in parts) > 0


def check_discrete_timesteps(timesteps: str) -> str:
    """`timesteps` of DDPM or DDIM, or a ValueError saying what it may be."""
    if timesteps in (UNIFORM, RELEASE) or is_respacing(timesteps):
        return timesteps
    raise ValueError(
        f"timesteps must be 'uniform', 'release' or a guided-diffusion respacing ('50', 'ddim25', "
        f"'250,200,150'), got {timesteps!r}"
    )


def respaced_timesteps(num_timesteps: int, respacing: str) -> list[int]:
    """guided-diffusion's `space_timesteps(num_timesteps, respacing)`, descending.

    "ddimN": range(0, T, k) for the smallest integer stride k that gives exactly N times.
    "N,M,...": T is cut into as many equal sections (the first T % sections one longer), and
    section i keeps its count c_i of times at start + round(j * stride), stride =
    (size - 1) / (c_i - 1) accumulated by addition (1 when c_i is 1). "50" of T = 1000: 999, 979,
    958, ..., 20, 0.
    """
    if not is_respacing(respacing):
        raise ValueError(f"not a guided-diffusion respacing: {respacing!r}")
    if respacing.startswith("ddim"):
        count = int(respacing[4:])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == count:
                return list(range(0, num_timesteps, stride))[::-1]
        raise ValueError(f"no integer stride gives exactly {count} of {num_timesteps} timesteps")
    counts = [int(p) for p in respacing.split(",")]
    size_per, extra = divmod(num_timesteps, len(counts))
    start, kept = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide a section of {size} timesteps into {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    return sorted(set(kept), reverse=True)


def discrete_timesteps(num_timesteps: int, steps: int | None, kind: str = UNIFORM) -> list[int]:
    """The integer timesteps DDPM or DDIM visit, descending.

    "uniform": `steps` times from T-1 down to 0, evenly strided and rounded (improved DDPM's
    respacing with one section, as a product rather than a running sum). "release": the release's
    "ddimN" respacing with N = `steps` (T = 1000, 25 steps: 960, 920, ..., 0). A respacing string
    (see `respaced_timesteps`) gives its own times; `steps`, when given, must count them.
    """
    kind = check_discrete_timesteps(kind)
    if is_respacing(kind):
        taus = respaced_timesteps(num_timesteps, kind)
        if steps is not None and steps != len(taus):
            raise ValueError(
                f"timesteps={kind!r} gives {len(taus)} steps of {num_timesteps}, not steps={steps}"
            )
        return taus
    steps = DEFAULT_STEPS if steps is None else steps
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    if kind == RELEASE:
        return respaced_timesteps(num_timesteps, f"ddim{steps}")
    if steps == 1:
        return [num_timesteps - 1]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)}, reverse=True)


def discrete_plan(
    num_timesteps: int, steps: int | None, kind: str = UNIFORM
) -> list[tuple[float, float]]:
    """(t, s) pairs of DDPM/DDIM: the respaced timesteps, the last one stepping to clean data (-1)."""
    taus = [float(t) for t in discrete_timesteps(num_timesteps, steps, kind)] + [-1.0]
    return list(zip(taus[:-1], taus[1:]))


def check_continuous_timesteps(timesteps: str, spacing: Spacing | str) -> bool:
    """Whether a DPM-Solver's `timesteps` option asks for the release's grid (which is logSNR
    spaced); a ValueError for an unknown value or "release" beside another spacing."""
    if timesteps not in CONTINUOUS_TIMESTEPS:
        raise ValueError(
            f"timesteps of DPM-Solver must be one of {CONTINUOUS_TIMESTEPS}, got {timesteps!r} "
            "(respacing strings are for DDPM and DDIM)"
        )
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
