"""`super_resolve`: sample high-res images conditioned on low-res ones with an SR denoiser (the
release's second stage), in batches, with noise shared by groups of images (a clip's frames)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mmfast.diffusion.base import Sampler, StepContext
from mmfast.diffusion.learned_variance import split_learned
from mmfast.diffusion.sample import make_sampler
from mmfast.diffusion.schedule import NoiseSchedule

# denoiser(x_t [N, C, S, S], t [N] float, low_res [N, C, s, s]) -> [N, 2C, S, S] (eps, v) or
# [N, C, S, S] (eps only).
SRDenoiser = Callable[[Tensor, Tensor, Tensor], Tensor]


def super_resolve(
    denoiser: SRDenoiser,
    low_res: Tensor,
    size: int,
    *,
    sampler: str | Sampler = "ddim",
    steps: int = 25,
    timesteps: str = "release",
    group: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    schedule: NoiseSchedule | None = None,
    progress: bool = False,
    **sampler_options,
) -> Tensor:
    """High-res images [N, C, size, size] for low_res [N, C, s, s] (in [-1, 1]).

    The release's rule is the default: DDIM, 25 steps on its "ddim25" times (960, 920, ..., 0),
    eta 0, x0 clipped. `group` consecutive images share their noise (the release: one initial
    noise per clip, shared by its 16 frames; a DDPM's step noise is shared the same way), drawn
    from a per-group generator seeded from `generator`, so the result does not depend on
    `batch_size` (images per denoiser call, default all; a group may straddle two calls). DDPM uses the model's
    learned variance when it predicts one (2C output channels) unless `variance=` says otherwise;
    `timesteps` ("release" or "uniform") applies to DDPM and DDIM.
    """
    if low_res.dim() != 4:
        raise ValueError(f"low_res must be [N, C, s, s], got {tuple(low_res.shape)}")
    n, c = low_res.shape[:2]
    if group < 1 or n % group:
        raise ValueError(f"group={group} must be a positive divisor of the {n} images")
    batch = n if batch_size is None else batch_size
    if batch < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = low_res.device
    schedule = (schedule or NoiseSchedule.linear()).to(device)
    if isinstance(sampler, str) and sampler in ("ddpm", "ddim"):
        sampler_options.setdefault("timesteps", timesteps)
    chosen = make_sampler(sampler, **sampler_options)
    plan = chosen.plan(schedule, steps)

    seeds = torch.randint(0, 2**62, (n // group,), generator=generator).tolist()
    out = torch.empty(n, c, size, size, device=device)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="super-resolution", unit="frame", dynamic_ncols=True)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        first, last = start // group, (stop - 1) // group
        # A group cut by the batch boundary replays its generator: both parts draw the same noise.
        gens = [torch.Generator().manual_seed(s) for s in seeds[first : last + 1]]
        owner = torch.arange(start, stop) // group - first  # each image's group in `gens`
        low = low_res[start:stop]

        def shared_noise(x: Tensor, gens=gens, owner=owner) -> Tensor:
            draws = torch.stack(
                [torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for g in gens]
            )
            return draws[owner].to(x.device)

        def predict(x: Tensor, tau: float, low=low) -> tuple[Tensor, Tensor | None]:
            t = torch.full((x.shape[0],), float(tau), device=x.device)
            y = denoiser(x, t, low)
            if y.shape[1] == 2 * c:
                eps, v = split_learned(y)
                return eps.to(x.dtype), v.to(x.dtype)
            if y.shape[1] != c:
                raise ValueError(
                    f"the SR denoiser returned {tuple(y.shape)} for x {tuple(x.shape)}"
                )
            return y.to(x.dtype), None

        ctx = StepContext(
            lambda x, tau: predict(x, tau)[0],
            schedule,
            None,
            None,
            learned=predict,
            noise=shared_noise,
        )
        x = shared_noise(torch.empty(stop - start, c, size, size, device=device))
        history: tuple = ()
        with torch.no_grad():
            for tr in plan:
                x, history = chosen.step(ctx, x, tr, history)
        out[start:stop] = x
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    return out
