"""`sample`: the public sampling call over any pair denoiser."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from mmfast.choice import Choice, choice
from mmfast.diffusion.base import Sampler, StepContext
from mmfast.diffusion.conditioning import Condition, Conditioner
from mmfast.diffusion.ddim import DDIM
from mmfast.diffusion.ddpm import DDPM
from mmfast.diffusion.dpm_solver import DPMSolver
from mmfast.diffusion.dpm_solver_pp import DPMSolverPP
from mmfast.diffusion.pair import Denoiser, PairLayout, flat_eps_fn
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.diffusion.spacing import DEFAULT_STEPS, RELEASE, is_respacing


class NoiseOrder(Choice):
    """How a run draws its noise from the generator."""

    MMFAST = "mmfast"  # the initial state in one draw; step noise only where a step uses it
    # The release's: the initial video then audio noise, then at every step (the last included)
    # a video then an audio draw, used or not; the conditioned modality keeps its initial noise.
    RELEASE = "release"


def noise_order_of(noise_order: NoiseOrder | str | None, timesteps: str) -> NoiseOrder:
    """The order a run draws in: `noise_order`, or by default the release's with
    timesteps="release" (a release run: its grid and its draws) and mmfast's otherwise."""
    if noise_order is None:
        return NoiseOrder.RELEASE if timesteps == RELEASE else NoiseOrder.MMFAST
    return choice(NoiseOrder, noise_order, "noise_order")


SAMPLERS: dict[str, type] = {
    "ddpm": DDPM,
    "ddim": DDIM,
    "dpm-solver": DPMSolver,
    "dpm-solver++": DPMSolverPP,
}


def make_sampler(sampler: str | Sampler, **options) -> Sampler:
    """A sampler by name (with its options, e.g. eta=0.5 for ddim, order=2 for dpm-solver), or the
    given sampler object."""
    if not isinstance(sampler, str):
        if options:
            raise ValueError(
                "sampler options go to the sampler's constructor, not beside a sampler object"
            )
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {sorted(SAMPLERS)}")
    return SAMPLERS[sampler](**options)


def _default_device(denoiser: Denoiser) -> torch.device:
    params = getattr(denoiser, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


def sample(
    denoiser: Denoiser,
    video_shape: Sequence[int],
    audio_shape: Sequence[int],
    *,
    sampler: str | Sampler = "dpm-solver++",
    steps: int | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    schedule: NoiseSchedule | None = None,
    condition: Condition | None = None,
    noise: tuple[Tensor, Tensor] | None = None,
    integer_time: bool = False,
    timesteps: str | None = None,
    noise_order: NoiseOrder | str | None = None,
    prediction: str = "eps",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    **sampler_options,
) -> tuple[Tensor, Tensor]:
    """Generate a batch of (video, audio) pairs.

    Args:
        denoiser: `denoiser(video_t, audio_t, t) -> (eps_video, eps_audio)`, t a float tensor [B]
            on the 0..T-1 scale (a CoupledUNet, or any function); or its v / x0 predictions.
        video_shape, audio_shape: batch-first shapes, e.g. (B, 16, 3, 64, 64) and (B, 1, 25600).
        sampler: "ddpm", "ddim", "dpm-solver" (the release's: order 3, single-step), "dpm-solver++"
            (2M, data prediction), or a sampler object; `sampler_options` go to its constructor
            (ddpm: variance, clip_denoised; ddim: eta, clip_denoised; dpm-solver: order, spacing;
            dpm-solver++: order, spacing, thresholding, lower_order_final).
        steps: number of transitions (model calls, except for dpm-solver's single-step segments,
            where it is the number of calls); None: 20, or as many as a respacing string gives.
        generator: seeds the initial noise, ancestral noise and the condition's noise. A sequence
            of B generators gives each sample its own: row b of every draw comes from generator
            b, so a sample is the same whatever else is in its batch.
        schedule: default linear betas 1e-4..0.02 over T = 1000.
        condition: a `Condition` for audio->video or video->audio generation.
        noise: the initial (video, audio) noise, instead of drawing it.
        integer_time: truncate the model's time input to an integer, as the release's DPM-Solver did.
        timesteps: the grid. "uniform": mmfast's (DDPM/DDIM: evenly strided integer times;
            DPM-Solver: its logSNR rule). DDPM and DDIM also take any of guided-diffusion's
            `timestep_respacing` strings, as the release's runs were configured: "50" (999, 979,
            958, ...), "ddim25" (960, 920, ..., 0), "250,200,150" (sections). "release": the
            release's whole run: DPM-Solver's grid with integer model times, DDIM's and DDPM's
            "ddimN" times (N = steps), and by default its noise order. None keeps the sampler's
            own option (default "uniform").
        noise_order: "release" draws as the release did (see `NoiseOrder`): initial video then
            audio, then each step's video then audio noise, drawn even where unused, as at the
            last step. The release drew the initial noise on the CPU and the steps' on the device;
            `generator` draws both, so a CPU generator seeded as the release's
            `torch.manual_seed` reproduces a CPU run exactly. "mmfast" draws the state at once
            and step noise where used. None: "release" with timesteps="release", else "mmfast".
        prediction: what the denoiser returns, "eps" (the release), "v" or "x0" (a model's
            `config.prediction`); every sampler and the conditioning use the eps it implies.
        dtype: the dtype of the sampler's state (fp32; the denoiser may compute in lower precision).

    Returns:
        (video, audio) shaped as asked, in `dtype`.
    """
    layout = PairLayout(tuple(video_shape), tuple(audio_shape))
    device = torch.device(device) if device is not None else _default_device(denoiser)
    schedule = (schedule or NoiseSchedule.linear()).to(device)
    chosen = make_sampler(sampler, **sampler_options)
    if timesteps is not None:
        chosen = dataclasses.replace(chosen, timesteps=timesteps)
    grid = getattr(chosen, "timesteps", "uniform")
    release = noise_order_of(noise_order, grid) is NoiseOrder.RELEASE
    if steps is None and not is_respacing(grid):
        steps = DEFAULT_STEPS
    gens = None if generator is None or isinstance(generator, torch.Generator) else list(generator)
    if gens is not None and len(gens) != layout.batch:
        raise ValueError(f"expected one generator per sample ({layout.batch}), got {len(gens)}")
    gen_device = generator.device if isinstance(generator, torch.Generator) else device

    def randn(*shape: int) -> Tensor:
        if gens is not None:  # [B, ...]: row b from generator b
            rows = [
                torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=dtype)
                for g in gens
            ]
            return torch.cat([r.to(device) for r in rows])
        return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)

    def randn_pair(like: Tensor | None = None) -> Tensor:
        """The release's draw: all of the batch's video noise, then all of its audio noise."""
        return layout.join(randn(*layout.video_shape), randn(*layout.audio_shape))

    if noise is not None:
        x = layout.join(noise[0].to(device, dtype), noise[1].to(device, dtype))
    elif release:
        x = randn_pair()
    else:
        x = randn(layout.batch, sum(layout.sizes))
    ctx = StepContext(
        flat_eps_fn(denoiser, layout, integer_time or grid == RELEASE, prediction, schedule),
        schedule,
        layout,
        generator if gens is None else None,
        noise=randn_pair if release else (lambda like: randn(*like.shape)) if gens else None,
        draw_always=release,
    )
    conditioner = None
    if condition is not None:
        given = layout.part(condition.modality)
        # The release noises the given modality with its own initial noise throughout.
        given_noise = (
            x[:, given].clone() if release else randn(layout.batch, given.stop - given.start)
        )
        conditioner = Conditioner(condition, layout, schedule, given_noise)
        ctx = conditioner.wrap(ctx)

    plan = chosen.plan(schedule, steps)
    if progress:
        from tqdm.auto import tqdm

        plan = tqdm(plan, desc=f"{chosen.name} sampling", unit="step", leave=False)
    history: tuple = ()
    for tr in plan:
        if conditioner is None:
            with torch.no_grad():
                x, history = chosen.step(ctx, x, tr, history)
        else:
            x, history = conditioner.step(chosen, ctx, x, tr, history)
    if conditioner is not None:
        x = conditioner.finalize(x)
    return layout.split(x)
