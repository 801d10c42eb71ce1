"""`sample(..., timesteps="release")` and guided-diffusion's respacing strings with
`noise_order="release"` against the release's rules, written out here on their own: the times its
samplers show the model, the order of its noise draws, and whole DDPM / DDIM runs reimplemented
from its p_sample / ddim_sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from analytic_gaussian import AUDIO, VIDEO, JointGaussian, flat

from mmfast.diffusion import NoiseSchedule, sample

T = 1000
BETAS = np.linspace(1e-4, 0.02, T, dtype=np.float64)  # the release's linear schedule
ACP = np.cumprod(1 - BETAS)


@pytest.fixture(scope="module")
def gauss() -> JointGaussian:
    return JointGaussian.make(seed=3)


def sample_pair(denoiser, n: int, **options):
    """`sample` of n (video, audio) pairs of the analytic Gaussian's shapes."""
    return sample(denoiser, (n, *VIDEO), (n, *AUDIO), **options)


class Spy:
    """A denoiser that records every model time and the first call's inputs."""

    def __init__(self, inner):
        self.inner, self.times, self.first = inner, [], None

    def __call__(self, video, audio, t):
        if self.first is None:
            self.first = (video.clone(), audio.clone())
        self.times.append(float(t[0]))
        return self.inner(video, audio, t)


# DPM-Solver's discrete VP schedule (its NoiseScheduleVP("discrete")): log alpha piecewise linear
# in t on the grid t_n = n / T, n = 1..T.
T_ARRAY = np.arange(1, T + 1, dtype=np.float64) / T
LOG_ALPHA = 0.5 * np.log(ACP)


def release_lambda(t: float) -> float:
    log_alpha = np.interp(t, T_ARRAY, LOG_ALPHA)
    return float(log_alpha - 0.5 * np.log(1 - np.exp(2 * log_alpha)))


def release_inverse_lambda(lam: float) -> float:
    log_alpha = -0.5 * np.logaddexp(0.0, -2.0 * lam)
    return float(np.interp(log_alpha, LOG_ALPHA[::-1], T_ARRAY[::-1]))


def release_dpm_solver_times(steps: int = 20) -> list[int]:
    """The model times of the release's DPM-Solver (order 3, single-step, 20 steps): 21 points
    uniform in logSNR, segments from point 0 to 3, 6, ..., 18, 20 (orders 3 x 6 then 2), the
    intermediate points at r = 1/3, 2/3 (order 3) or 1/2 (order 2) of each segment's logSNR
    step, and the model time int((t - 1/T) * T)."""
    lams = np.linspace(release_lambda(1.0), release_lambda(1.0 / T), steps + 1)
    orders = [3] * 6 + [2]
    bounds = np.cumsum([0, *orders])
    times = []
    for k, order in enumerate(orders):
        lam_s, lam_e = lams[bounds[k]], lams[bounds[k + 1]]
        rs = [0.0, 1 / 3, 2 / 3] if order == 3 else [0.0, 0.5]
        for r in rs:
            t = 1.0 if k == 0 and r == 0 else release_inverse_lambda(lam_s + r * (lam_e - lam_s))
            times.append(int((t - 1.0 / T) * T))
    return times


def test_dpm_solver_release_grid(gauss):
    expected = release_dpm_solver_times()
    assert expected[:4] == [999, 949, 898, 843]  # as the release's model sees them
    spy = Spy(gauss.denoiser)
    sample(spy, (2, *VIDEO), (2, *AUDIO), sampler="dpm-solver", steps=20, timesteps="release")
    assert spy.times == [float(t) for t in expected]


def test_dpm_solver_uniform_grid_differs(gauss):
    """mmfast's own default places the 8 segment ends uniformly in logSNR instead."""
    spy = Spy(gauss.denoiser)
    sample(spy, (2, *VIDEO), (2, *AUDIO), sampler="dpm-solver", steps=20, integer_time=True)
    assert spy.times[:4] == [999.0, 952.0, 903.0, 851.0]
    assert len(spy.times) == 20


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_discrete_release_times(gauss, sampler):
    spy = Spy(gauss.denoiser)
    sample(spy, (1, *VIDEO), (1, *AUDIO), sampler=sampler, steps=25, timesteps="release")
    assert spy.times == [float(t) for t in range(960, -1, -40)]


def test_dpm_solver_pp_release_is_its_logsnr_grid(gauss):
    runs = []
    for timesteps in ("uniform", "release"):
        spy = Spy(gauss.denoiser)
        sample(spy, (1, *VIDEO), (1, *AUDIO), sampler="dpm-solver++", steps=10, timesteps=timesteps)
        runs.append(spy.times)
    assert runs[1] == [float(int(t)) for t in runs[0]]  # the same grid, integer model times
    with pytest.raises(ValueError, match="logSNR"):
        sample_pair(
            gauss.denoiser,
            1,
            sampler="dpm-solver",
            spacing="time-uniform",
            timesteps="release",
        )


def space_timesteps(spec: str) -> list[int]:
    """guided-diffusion's space_timesteps(T, spec), ascending. "ddimN": the smallest integer
    stride k with exactly N times in range(0, T, k). Otherwise comma-separated counts, one per
    equal section of range(T) (the first T % sections one longer): a section of `size` keeps
    `count` times at start + round(x), x stepping by (size - 1) / (count - 1) from 0."""
    if spec.startswith("ddim"):
        stride = next(k for k in range(1, T) if len(range(0, T, k)) == int(spec[4:]))
        return list(range(0, T, stride))
    counts = [int(c) for c in spec.split(",")]
    kept, start = set(), 0
    for i, count in enumerate(counts):
        size = T // len(counts) + (1 if i < T % len(counts) else 0)
        x, frac = 0.0, (size - 1) / (count - 1) if count > 1 else 1
        for _ in range(count):
            kept.add(start + round(x))
            x += frac
        start += size
    return sorted(kept)


def _release_respaced(spec: str) -> tuple[list[int], np.ndarray]:
    """A guided-diffusion respacing: the kept times and the respaced betas."""
    kept = space_timesteps(spec)
    last, betas = 1.0, []
    for t in kept:
        betas.append(1 - ACP[t] / last)
        last = ACP[t]
    return kept, np.array(betas)


def release_run(gauss, sampler: str, n: int, spec: str, seed: int, eta: float = 0.0):
    """The release's p_sample_loop / ddim_sample_loop on the respaced chain, float64 maths on
    float32 draws: initial video then audio noise; at every step (the last included) a video
    then an audio draw; clipped x0; DDPM's fixed large variance. Returns (sample [n, D], the
    generator afterwards)."""
    g = torch.Generator().manual_seed(seed)
    draw = lambda: flat(
        torch.randn((n, *VIDEO), generator=g), torch.randn((n, *AUDIO), generator=g)
    )
    kept, betas = _release_respaced(spec)
    acp = np.cumprod(1 - betas)
    acp_prev = np.append(1.0, acp[:-1])
    x = draw().double()
    nv = math.prod(VIDEO)
    for i in reversed(range(len(kept))):
        t = torch.full((n,), float(kept[i]), dtype=torch.float64)
        ev, ea = gauss.denoiser(
            x[:, :nv].reshape(n, *VIDEO).float(), x[:, nv:].reshape(n, *AUDIO).float(), t
        )
        eps = flat(ev, ea).double()
        x0 = ((x - math.sqrt(1 - acp[i]) * eps) / math.sqrt(acp[i])).clamp(-1, 1)
        z = draw().double()
        nonzero = 0.0 if i == 0 else 1.0
        if sampler == "ddpm":
            mean = (betas[i] * math.sqrt(acp_prev[i]) / (1 - acp[i])) * x0 + (
                (1 - acp_prev[i]) * math.sqrt(1 - betas[i]) / (1 - acp[i])
            ) * x
            x = mean + nonzero * math.sqrt(betas[i]) * z
        else:
            eps = (x - math.sqrt(acp[i]) * x0) / math.sqrt(1 - acp[i])
            sigma = (
                eta
                * math.sqrt((1 - acp_prev[i]) / (1 - acp[i]))
                * math.sqrt(1 - acp[i] / acp_prev[i])
            )
            mean = math.sqrt(acp_prev[i]) * x0 + math.sqrt(1 - acp_prev[i] - sigma**2) * eps
            x = mean + nonzero * sigma * z
    return x, g


@pytest.mark.parametrize(
    "sampler,options", [("ddpm", {}), ("ddim", {"eta": 0.0}), ("ddim", {"eta": 0.7})]
)
def test_discrete_release_run_is_reproduced(gauss, sampler, options):
    n, steps, seed = 3, 25, 11
    expected, g_release = release_run(gauss, sampler, n, f"ddim{steps}", seed, **options)
    g = torch.Generator().manual_seed(seed)
    v, a = sample_pair(
        gauss.denoiser,
        n,
        sampler=sampler,
        steps=steps,
        generator=g,
        timesteps="release",
        **options,
    )
    got = flat(v, a).double()
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5
    # The same number of draws (the last step's included): the next draw is the same.
    assert torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=g_release))
    # mmfast's own order draws differently.
    v2, a2 = sample_pair(
        gauss.denoiser,
        n,
        sampler=sampler,
        steps=steps,
        generator=torch.Generator().manual_seed(seed),
        **options,
    )
    assert not torch.allclose(flat(v2, a2).double(), expected, atol=1e-3)


def test_release_ddpm_run_with_respacing_50_is_reproduced(gauss):
    """A release DDPM run configured with timestep_respacing="50": its grid (999, 979, 958, ...)
    with its draws, from timesteps="50" and noise_order="release"."""
    kept = space_timesteps("50")
    assert len(kept) == 50 and kept[::-1][:4] == [999, 979, 958, 938] and kept[0] == 0
    n, seed = 2, 4
    expected, g_release = release_run(gauss, "ddpm", n, "50", seed)
    g = torch.Generator().manual_seed(seed)
    spy = Spy(gauss.denoiser)
    v, a = sample_pair(spy, n, sampler="ddpm", generator=g, timesteps="50", noise_order="release")
    assert spy.times == [float(t) for t in kept[::-1]]
    got = flat(v, a).double()
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5
    assert torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=g_release))


@pytest.mark.parametrize("spec", ["50", "ddim25", "250,200,150", "10,1", "7"])
def test_respacing_strings_give_guided_diffusions_times(gauss, spec):
    spy = Spy(gauss.denoiser)
    sample_pair(spy, 1, sampler="ddim", timesteps=spec)
    assert spy.times == [float(t) for t in space_timesteps(spec)[::-1]]


def test_release_timesteps_are_the_ddimN_grid_in_the_release_order(gauss):
    """timesteps="release" (kept for DDPM/DDIM as the release's whole run) is "ddimN" plus
    noise_order="release"; the grid alone draws in mmfast's order."""
    runs = {}
    for key, options in {
        "release": {"timesteps": "release", "steps": 25},
        "split": {"timesteps": "ddim25", "noise_order": "release"},
        "grid only": {"timesteps": "ddim25"},
    }.items():
        g = torch.Generator().manual_seed(6)
        runs[key] = flat(*sample_pair(gauss.denoiser, 1, sampler="ddpm", generator=g, **options))
    assert torch.equal(runs["release"], runs["split"])
    assert not torch.allclose(runs["grid only"], runs["release"], atol=1e-3)


def test_respacing_options_are_checked(gauss):
    with pytest.raises(ValueError, match=r"timesteps='50' gives 50 steps of 1000, not steps=20"):
        sample_pair(gauss.denoiser, 1, sampler="ddpm", steps=20, timesteps="50")
    with pytest.raises(ValueError, match="guided-diffusion respacing"):
        sample_pair(gauss.denoiser, 1, sampler="ddim", timesteps="fifty")
    with pytest.raises(ValueError, match="respacing strings are for DDPM and DDIM"):
        sample_pair(gauss.denoiser, 1, sampler="dpm-solver", timesteps="50")
    with pytest.raises(ValueError, match="cannot divide a section of 500 timesteps into 600"):
        sample_pair(gauss.denoiser, 1, sampler="ddpm", timesteps="600,1")
    with pytest.raises(ValueError, match=r"noise_order must be one of \('mmfast', 'release'\)"):
        sample_pair(gauss.denoiser, 1, sampler="ddpm", steps=2, noise_order="original")


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver", "dpm-solver++"])
def test_initial_noise_is_video_then_audio(gauss, sampler):
    n, seed = 2, 5
    g = torch.Generator().manual_seed(seed)
    video_noise, audio_noise = (
        torch.randn((n, *VIDEO), generator=g),
        torch.randn((n, *AUDIO), generator=g),
    )
    spy = Spy(gauss.denoiser)
    sample_pair(
        spy,
        n,
        sampler=sampler,
        steps=6,
        generator=torch.Generator().manual_seed(seed),
        timesteps="release",
    )
    assert torch.equal(spy.first[0], video_noise) and torch.equal(spy.first[1], audio_noise)


def test_release_conditioning_noises_the_given_modality_with_its_initial_noise(gauss):
    """The release's zero-shot loop starts from noise = {video, audio} and q-samples the given
    modality with that same noise at every step."""
    from mmfast.diffusion import Condition

    n, seed = 2, 9
    g = torch.Generator().manual_seed(seed)
    torch.randn((n, *VIDEO), generator=g)
    audio_noise = torch.randn((n, *AUDIO), generator=g)
    given = torch.linspace(-0.5, 0.5, n * math.prod(AUDIO)).reshape(n, *AUDIO)
    spy = Spy(gauss.denoiser)
    sample_pair(
        spy,
        n,
        sampler="ddpm",
        steps=25,
        generator=torch.Generator().manual_seed(seed),
        condition=Condition("audio", given, method="replacement"),
        timesteps="release",
    )
    sched = NoiseSchedule.linear()
    expected = sched.add_noise(given.double(), audio_noise.double(), 960.0)
    torch.testing.assert_close(spy.first[1].double(), expected, rtol=1e-5, atol=1e-6)


def test_release_grids_sample_the_data_distribution(gauss):
    """The release's grids still solve the ODE: the statistics bounds of the sampler tests."""
    from test_samplers_gaussian import COV_BOUND, MEAN_BOUND, N_STATS

    v, a = sample_pair(
        gauss.denoiser,
        N_STATS,
        sampler="dpm-solver",
        steps=20,
        generator=torch.Generator().manual_seed(2),
        timesteps="release",
    )
    mean_chi2, cov_err = gauss.whitened_errors(flat(v, a))
    assert mean_chi2 < MEAN_BOUND and cov_err < COV_BOUND, (mean_chi2, cov_err)
