"""Learned-range variance: the hybrid loss's terms against closed forms, DDPM's learned variance
against its fixed ends, and the SR sampler's release rules (times, shared noise, batching)."""

from __future__ import annotations

import math

import pytest
import torch

from mmfast.diffusion import DDPM, NoiseSchedule, hybrid_loss, super_resolve
from mmfast.diffusion.base import StepContext, Transition
from mmfast.diffusion.learned_variance import (
    discretized_gaussian_log_likelihood,
    learned_log_variance,
    normal_kl,
    posterior_terms,
)

SCHEDULE = NoiseSchedule.linear()


def test_normal_kl_matches_torch_distributions(gen):
    m1, m2 = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    lv1, lv2 = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    want = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, torch.exp(0.5 * lv1)),
        torch.distributions.Normal(m2, torch.exp(0.5 * lv2)),
    )
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), want, rtol=1e-5, atol=1e-6)


def test_discretized_likelihood_is_the_bin_mass(gen):
    """Inner bins hold the CDF difference over +-1/255 (the tanh CDF is within 1e-3 of the exact
    one), edge bins the tails; the 256 bins of a distribution sum to 1."""
    mean, log_scale = torch.tensor(0.1), torch.tensor(math.log(0.3))
    values = torch.linspace(-1, 1, 256)
    p = discretized_gaussian_log_likelihood(values, mean, log_scale).exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    exact = torch.special.ndtr((values[100] - mean + 1 / 255) / 0.3) - torch.special.ndtr(
        (values[100] - mean - 1 / 255) / 0.3
    )
    assert p[100].item() == pytest.approx(exact.item(), rel=5e-3)


def test_learned_range_ends_are_the_fixed_variances():
    t = torch.tensor([0, 1, 500, 999])
    _, _, log_post, log_beta = posterior_terms(SCHEDULE, t, (4, 1))
    for v, want in ((1.0, log_beta), (-1.0, log_post)):
        got = learned_log_variance(torch.full_like(log_beta, v), log_beta, log_post)
        torch.testing.assert_close(got, want)
    assert torch.equal(log_post[0], log_post[1])  # t = 0 takes t = 1's (the posterior's is 0)


def _exact(v_value: float):
    """A denoiser whose eps is the true noise (read from a closure) and whose v is constant."""
    state = {}

    def denoiser(x_t, t):
        return torch.cat([state["noise"], torch.full_like(state["noise"], v_value)], dim=1)

    return state, denoiser


def test_hybrid_loss_is_zero_for_the_true_posterior(gen):
    """With eps exact and v = -1 (the posterior variance) the KL term vanishes for t > 0; at t = 0
    the bound is the decoder's NLL in bits per dimension, positive."""
    x0 = torch.rand(3, 2, 4, 4, generator=gen) * 2 - 1
    noise = torch.randn(x0.shape, generator=gen)
    state, denoiser = _exact(-1.0)
    state["noise"] = noise
    out = hybrid_loss(denoiser, x0, SCHEDULE, timesteps=torch.tensor([1, 400, 999]), noise=noise)
    assert out.mse.item() == pytest.approx(0.0, abs=1e-10)
    assert out.vb.item() == pytest.approx(0.0, abs=1e-5)
    at_zero = hybrid_loss(
        denoiser, x0, SCHEDULE, timesteps=torch.zeros(3, dtype=torch.long), noise=noise
    )
    assert at_zero.vb.item() > 0.1
    # A variance off the posterior (v = +1: beta_t) costs bits.
    state2, wide = _exact(1.0)
    state2["noise"] = noise
    assert (
        hybrid_loss(wide, x0, SCHEDULE, timesteps=torch.tensor([1, 400, 999]), noise=noise).vb
        > 1e-3
    )


def test_the_bound_trains_only_the_variance(gen):
    x0 = torch.rand(2, 3, 4, 4, generator=gen) * 2 - 1
    eps = torch.randn(2, 3, 4, 4, generator=gen).requires_grad_()
    v = torch.zeros(2, 3, 4, 4).requires_grad_()
    out = hybrid_loss(lambda x, t: torch.cat([eps, v], 1), x0, SCHEDULE, generator=gen)
    g_eps, g_v = torch.autograd.grad(out.vb, [eps, v], allow_unused=True)
    assert g_eps is None or g_eps.abs().max() == 0
    assert g_v.abs().max() > 0


def test_ddpm_learned_variance_interpolates_the_fixed_ones(gen):
    """v = +1 is DDPM's large variance, v = -1 its small one, on the same noise."""
    x = torch.randn(2, 8, generator=gen, dtype=torch.float64)
    eps = torch.randn(2, 8, generator=gen, dtype=torch.float64)
    tr = Transition(500.0, 480.0)

    def run(variance, v_value):
        ctx = StepContext(
            lambda x_, tau: eps,
            SCHEDULE,
            None,
            torch.Generator().manual_seed(9),
            learned=(lambda x_, tau: (eps, torch.full_like(eps, v_value)))
            if v_value is not None
            else None,
        )
        return DDPM(variance=variance, clip_denoised=False).step(ctx, x, tr, ())[0]

    torch.testing.assert_close(run("learned", 1.0), run("large", None))
    torch.testing.assert_close(run("learned", -1.0), run("small", None))
    with pytest.raises(ValueError, match="needs a model that predicts its variance"):
        run("learned", None)


class _Recorder:
    """An SR denoiser of known behaviour: eps = x / 2, v = 0; records the times it is called at."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, x, t, low):
        self.times.append(float(t[0]))
        assert low.shape[0] == x.shape[0]
        return torch.cat([0.5 * x + 0 * low.mean(), torch.zeros_like(x)], dim=1)


def test_release_ddim25_times_and_shared_noise():
    low = torch.zeros(6, 3, 4, 4)
    rec = _Recorder()
    out = super_resolve(rec, low, 8, group=3, generator=torch.Generator().manual_seed(1))
    assert rec.times == [float(t) for t in range(960, -1, -40)]  # the release's ddim25
    assert out.shape == (6, 3, 8, 8)
    torch.testing.assert_close(out[0], out[2])  # one clip's frames share the noise
    assert (out[0] - out[3]).abs().max() > 1e-3  # another clip's differ


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_results_do_not_depend_on_the_batch_size(sampler):
    low = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    runs = [
        super_resolve(
            _Recorder(), low, 8, sampler=sampler, steps=5, group=2,
            generator=torch.Generator().manual_seed(4), batch_size=b,
        )
        for b in (8, 2, 5, 1)
    ]  # fmt: skip
    for other in runs[1:]:
        torch.testing.assert_close(other, runs[0], rtol=0, atol=0)
