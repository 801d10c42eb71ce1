"""The v and x0 prediction targets end to end: the loss (and its min-SNR weights) and every
sampler and conditioning method on the analytic Gaussian, where the exact predictor of each target
is known (see analytic_gaussian.py)."""

from __future__ import annotations

import pytest
import torch
from analytic_gaussian import AUDIO, VIDEO, JointGaussian, flat
from test_samplers_gaussian import COV_BOUND, MEAN_BOUND, N_STATS

from mmfast.diffusion import (
    DDIM,
    DDPM,
    PREDICTIONS,
    Condition,
    DPMSolver,
    DPMSolverPP,
    NoiseSchedule,
    diffusion_loss,
    sample,
)
from mmfast.diffusion.loss import timestep_weights
from mmfast.diffusion.prediction import eps_from_prediction, prediction_target

SAMPLERS = {
    "ddpm-250": (DDPM(clip_denoised=False), 250),
    "ddim-250": (DDIM(clip_denoised=False), 250),
    "ddim-250-eta0.5": (DDIM(eta=0.5, clip_denoised=False), 250),
    "dpm-solver-20": (DPMSolver(), 20),
    "dpm-solver++-20": (DPMSolverPP(), 20),
}


@pytest.fixture(scope="module")
def gauss() -> JointGaussian:
    return JointGaussian.make(seed=0)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_target_and_its_eps_round_trip(prediction):
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 5, 7, generator=g, dtype=torch.float64)
    alpha = torch.rand(5, 1, generator=g, dtype=torch.float64) * 0.98 + 0.01
    sigma = (1 - alpha**2).sqrt()
    x_t = alpha * x0 + sigma * noise
    target = prediction_target(prediction, x0, noise, alpha, sigma)
    torch.testing.assert_close(eps_from_prediction(prediction, target, x_t, alpha, sigma), noise)
    expected = {"eps": noise, "x0": x0, "v": alpha * noise - sigma * x0}[prediction]
    torch.testing.assert_close(target, expected)


def test_min_snr_weights_are_one_objective_in_every_target(gauss):
    """The same predictions expressed as eps, v or x0 give the same min-SNR loss (each target's
    weight is min(SNR, gamma) over its error's scale relative to the x0 error), and uniform
    weighting is the plain MSE of each target."""
    sched = gauss.schedule
    g = torch.Generator().manual_seed(3)
    video = torch.rand(6, *VIDEO, generator=g, dtype=torch.float64) * 2 - 1
    audio = torch.rand(6, *AUDIO, generator=g, dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 3, 40, 200, 600, 999])

    def as_target(prediction):
        """An arbitrary eps predictor (0.5 x_t), expressed as `prediction`, per sample's time."""

        def denoiser(v, a, tt):
            alpha, sigma = (s.view(-1, 1) for s in sched.alpha_sigma(tt.to(torch.float64)))
            outs = []
            for x in (v, a):
                flat_x = x.reshape(x.shape[0], -1)
                eps = 0.5 * flat_x
                x0 = (flat_x - sigma * eps) / alpha
                out = {"eps": eps, "x0": x0, "v": alpha * eps - sigma * x0}[prediction]
                outs.append(out.reshape(x.shape))
            return outs[0], outs[1]

        return denoiser

    def loss(prediction, weighting):
        return diffusion_loss(
            as_target(prediction),
            video,
            audio,
            sched,
            generator=torch.Generator().manual_seed(1),
            timesteps=t,
            prediction=prediction,
            weighting=weighting,
            min_snr_gamma=5.0,
        )

    per_target = [loss(p, "min-snr").loss for p in PREDICTIONS]
    for value in per_target[1:]:
        torch.testing.assert_close(value, per_target[0], rtol=1e-4, atol=0)
    uniform = [loss(p, "uniform") for p in PREDICTIONS]
    assert len({round(float(u.loss), 6) for u in uniform}) == 3  # the targets differ in scale
    for u in uniform:
        torch.testing.assert_close(u.loss, u.video + u.audio, rtol=1e-5, atol=0)


def test_min_snr_weights_values():
    sched = NoiseSchedule.linear()
    t = torch.tensor([0, 100, 500, 999])
    acp = sched.alpha_bar(t)
    snr = (acp / (1 - acp)).float()
    clipped = snr.clamp(max=5.0)
    torch.testing.assert_close(timestep_weights(sched, t, "eps", "min-snr", 5.0), clipped / snr)
    torch.testing.assert_close(timestep_weights(sched, t, "v", "min-snr", 5.0), clipped / (snr + 1))
    torch.testing.assert_close(timestep_weights(sched, t, "x0", "min-snr", 5.0), clipped)
    assert timestep_weights(sched, t, "v", "uniform").tolist() == [1.0] * 4
    assert float(snr[0]) > 5 > float(snr[-1])  # the clip is active at t = 0 only
    with pytest.raises(ValueError, match="loss weighting must be one of"):
        timestep_weights(sched, t, "eps", "snr")
    with pytest.raises(ValueError, match="prediction must be one of"):
        timestep_weights(sched, t, "noise", "uniform")


@pytest.mark.parametrize("prediction", ["v", "x0"])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_with_every_target(gauss, name, prediction):
    """Statistics as in test_samplers_gaussian (eps is tested there), and the same run as the eps
    predictor's, step for step, on a few samples."""
    sampler, steps = SAMPLERS[name]

    def run(n, pred):
        v, a = sample(
            gauss.target_denoiser(pred),
            (n, *VIDEO),
            (n, *AUDIO),
            sampler=sampler,
            steps=steps,
            generator=torch.Generator().manual_seed(1),
            prediction=pred,
        )
        return flat(v, a)

    mean_chi2, cov_err = gauss.whitened_errors(run(N_STATS, prediction))
    assert mean_chi2 < MEAN_BOUND, mean_chi2
    assert cov_err < COV_BOUND, cov_err
    torch.testing.assert_close(run(8, prediction), run(8, "eps"), rtol=1e-4, atol=1e-4)


def test_a_target_read_as_another_fails_the_statistics(gauss):
    """The bounds see a mislabelled target: v outputs read as eps."""
    v, a = sample(
        gauss.target_denoiser("v"),
        (N_STATS, *VIDEO),
        (N_STATS, *AUDIO),
        sampler="dpm-solver++",
        steps=20,
        generator=torch.Generator().manual_seed(1),
        prediction="eps",
    )
    mean_chi2, cov_err = gauss.whitened_errors(flat(v, a))
    assert mean_chi2 > MEAN_BOUND or cov_err > COV_BOUND


@pytest.mark.parametrize("method", ["replacement", "guided"])
@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_conditioning_with_every_target(gauss, method, prediction):
    """Zero-shot conditioning sees the eps each target implies: the same run as eps's, guidance
    gradients included."""
    value = gauss.draw(4, seed=7)[:, 24:].to(torch.float32).reshape(4, *AUDIO)

    def run(pred):
        v, a = sample(
            gauss.target_denoiser(pred),
            (4, *VIDEO),
            (4, *AUDIO),
            sampler="ddim",
            steps=25,
            generator=torch.Generator().manual_seed(2),
            condition=Condition("audio", value, method=method, scale=1.0),
            prediction=pred,
        )
        return flat(v, a)

    torch.testing.assert_close(run(prediction), run("eps"), rtol=1e-4, atol=1e-4)


def test_conversion_needs_the_schedule():
    from mmfast.diffusion.pair import PairLayout, flat_eps_fn

    with pytest.raises(ValueError, match="needs the schedule"):
        flat_eps_fn(lambda v, a, t: (v, a), PairLayout((1, 2), (1, 2)), prediction="v")
