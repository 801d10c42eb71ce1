"""Every sampler against closed-form answers on a joint Gaussian (see analytic_gaussian.py)."""

from __future__ import annotations

import math

import pytest
import torch
from analytic_gaussian import AUDIO, VIDEO, D, JointGaussian, flat

from mmfast.diffusion import DDIM, DDPM, DPMSolver, DPMSolverPP, sample


@pytest.fixture(scope="module")
def gauss() -> JointGaussian:
    return JointGaussian.make(seed=0)


def _run(gauss, n, sampler, steps, seed=1, noise=None, dtype=torch.float32):
    v, a = sample(
        gauss.denoiser,
        (n, *VIDEO),
        (n, *AUDIO),
        sampler=sampler,
        steps=steps,
        generator=torch.Generator().manual_seed(seed),
        noise=noise,
        dtype=dtype,
    )
    return flat(v, a)


# n = 10000 exact samples give ||z||^2 ~ chi2_32 (mean 32, std 8) and a whitened covariance error
# of sqrt(D (D+1) / n) = 0.32 in Frobenius norm with a few percent spread. The bounds below are
# chi2 mean + 8 std and twice the expected covariance error: an exact sampler passes them with
# certainty, and a sampler whose covariance is off by more than about 0.55 (whitened) fails.
N_STATS = 10_000
MEAN_BOUND = D + 8 * math.sqrt(2 * D)
COV_BOUND = 2 * math.sqrt(D * (D + 1) / N_STATS)


@pytest.mark.parametrize(
    "sampler,steps",
    [
        (DDPM(clip_denoised=False), 250),  # respaced (the full chain is the same step code)
        (DDPM(variance="small", clip_denoised=False), 250),
        (DDIM(clip_denoised=False), 250),
        (DDIM(eta=0.5, clip_denoised=False), 250),
        (DPMSolver(), 20),  # the release's: order 3, single-step, logSNR
        (DPMSolverPP(), 20),
    ],
    ids=[
        "ddpm-250",
        "ddpm-250-small",
        "ddim-250",
        "ddim-250-eta0.5",
        "dpm-solver-20",
        "dpm-solver++-20",
    ],
)
def test_samples_have_the_data_mean_and_covariance(gauss, sampler, steps):
    x = _run(gauss, N_STATS, sampler, steps)
    mean_chi2, cov_err = gauss.whitened_errors(x)
    assert mean_chi2 < MEAN_BOUND, mean_chi2
    assert cov_err < COV_BOUND, cov_err


def test_a_wrong_noise_predictor_fails_the_statistics(gauss):
    """The bounds can fail: scaling the predictor by 0.9 leaves extra noise in every sample."""

    def off(v, a, t):
        ev, ea = gauss.denoiser(v, a, t)
        return 0.9 * ev, 0.9 * ea

    v, a = sample(
        off,
        (N_STATS, *VIDEO),
        (N_STATS, *AUDIO),
        sampler="dpm-solver",
        steps=20,
        generator=torch.Generator().manual_seed(1),
    )
    assert gauss.whitened_errors(flat(v, a))[1] > COV_BOUND


@pytest.fixture(scope="module")
def shared_noise():
    g = torch.Generator().manual_seed(5)
    return torch.randn(2000, *VIDEO, generator=g, dtype=torch.float64), torch.randn(
        2000, *AUDIO, generator=g, dtype=torch.float64
    )


def test_dpm_solvers_land_on_the_probability_flow_ode(gauss, shared_noise):
    """From the same noise, DPM-Solver(++) at 20 steps lands within 2e-2 (3e-2) relative distance
    of 1000-step DDIM (eta 0: the probability-flow ODE's first-order solution); measured 9.6e-3
    and 1.5e-2. 20-step DDIM is 10x further off."""
    ref = _run(
        gauss, 2000, DDIM(clip_denoised=False), 1000, noise=shared_noise, dtype=torch.float64
    )
    dist = lambda x: float((x - ref).norm() / ref.norm())
    assert dist(_run(gauss, 2000, DPMSolver(), 20, noise=shared_noise, dtype=torch.float64)) < 2e-2
    assert (
        dist(_run(gauss, 2000, DPMSolverPP(), 20, noise=shared_noise, dtype=torch.float64)) < 3e-2
    )
    assert (
        dist(
            _run(
                gauss, 2000, DDIM(clip_denoised=False), 20, noise=shared_noise, dtype=torch.float64
            )
        )
        > 0.1
    )


@pytest.fixture(scope="module")
def accurate_ode(gauss, shared_noise):
    """The ODE's solution from the first 500 noises, to ~1e-7 (third order, 900 steps)."""
    noise = (shared_noise[0][:500], shared_noise[1][:500])
    return _run(gauss, 500, DPMSolver(), 900, noise=noise, dtype=torch.float64)


@pytest.mark.parametrize(
    "sampler,order",
    [
        (DPMSolver(order=1), 1),
        (DPMSolver(order=2), 2),
        (DPMSolver(order=3), 3),
        (DPMSolverPP(order=2), 2),
        (DDIM(clip_denoised=False), 1),
    ],
    ids=["dpm-solver-1", "dpm-solver-2", "dpm-solver-3", "dpm-solver++-2M", "ddim"],
)
def test_convergence_order(gauss, shared_noise, accurate_ode, sampler, order):
    """Doubling the steps divides the error by about 2**order (measured: 2.0, 4.1-4.3, 10-14, 3.8-4.0, 2.0)."""
    noise = (shared_noise[0][:500], shared_noise[1][:500])
    ref = accurate_ode
    errs = [
        float((_run(gauss, 500, sampler, s, noise=noise, dtype=torch.float64) - ref).norm())
        for s in (48, 96)
    ]
    ratio = errs[0] / errs[1]
    assert 0.8 * 2**order < ratio < 2.0 * 2**order, ratio


def test_ddim_with_eta_one_is_ddpm_with_the_posterior_variance(gauss):
    a = _run(gauss, 64, DDIM(eta=1.0, clip_denoised=False), 50, seed=3)
    b = _run(gauss, 64, DDPM(variance="small", clip_denoised=False), 50, seed=3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_release_dpm_solver_calls_the_model_20_times_with_float_or_integer_time(gauss):
    seen = []

    def spy(v, a, t):
        seen.append(t.clone())
        return gauss.denoiser(v, a, t)

    sample(
        spy,
        (2, *VIDEO),
        (2, *AUDIO),
        sampler="dpm-solver",
        steps=20,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(seen) == 20
    assert all(t.dtype == torch.float32 and t.shape == (2,) for t in seen)
    assert any(float(t[0]) != round(float(t[0])) for t in seen)
    assert float(seen[0][0]) == 999.0 and min(float(t[0]) for t in seen) >= 0
    seen.clear()
    sample(
        spy,
        (2, *VIDEO),
        (2, *AUDIO),
        sampler="dpm-solver",
        steps=20,
        integer_time=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert all(float(t[0]) == round(float(t[0])) for t in seen)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm-solver", "dpm-solver++"])
def test_generation_is_seeded(gauss, name):
    run = lambda seed: sample(
        gauss.denoiser,
        (3, *VIDEO),
        (3, *AUDIO),
        sampler=name,
        steps=10,
        generator=torch.Generator().manual_seed(seed),
    )
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (3, *VIDEO) and a[1].shape == (3, *AUDIO)


def test_clipping_keeps_ddpm_in_range(gauss):
    v, a = sample(
        gauss.denoiser,
        (500, *VIDEO),
        (500, *AUDIO),
        sampler="ddpm",
        steps=50,
        generator=torch.Generator().manual_seed(0),
    )
    assert v.abs().max() <= 1.0 + 1e-5 and a.abs().max() <= 1.0 + 1e-5


def test_thresholding_bounds_each_modality(gauss):
    loud = lambda v, a, t: tuple(3 * e for e in gauss.denoiser(v, a, t))
    v, a = sample(
        loud,
        (50, *VIDEO),
        (50, *AUDIO),
        sampler="dpm-solver++",
        steps=10,
        thresholding=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert v.abs().max() < 1.05 and a.abs().max() < 1.05


def test_bad_arguments_are_named(gauss):
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        sample(gauss.denoiser, (1, *VIDEO), (1, *AUDIO), sampler="euler")
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        sample(gauss.denoiser, (1, *VIDEO), (1, *AUDIO), sampler="dpm-solver++", order=3)
    with pytest.raises(ValueError, match="batch sizes differ"):
        sample(gauss.denoiser, (1, *VIDEO), (2, *AUDIO))
    with pytest.raises(ValueError, match="the denoiser returned shapes"):
        sample(lambda v, a, t: (v[:, :1], a), (1, *VIDEO), (1, *AUDIO))
