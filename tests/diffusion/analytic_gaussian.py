"""A joint Gaussian (video, audio) data distribution whose exact noise predictor is known, so that
samplers and conditioning can be checked against closed-form answers.

Data x0 ~ N(mu, Sigma) over D = 24 video + 8 audio dims, correlated across the modalities. At time
tau, x = alpha x0 + sigma eps with x ~ N(alpha mu, alpha^2 Sigma + sigma^2 I), so the optimal
predictor is E[eps | x] = sigma (alpha^2 Sigma + sigma^2 I)^-1 (x - alpha mu).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmfast.diffusion import NoiseSchedule

VIDEO = (2, 3, 2, 2)  # F, C, H, W
AUDIO = (1, 8)  # C, L
NV, NA = 24, 8
D = NV + NA


@dataclass
class JointGaussian:
    mu: Tensor  # [D] float64
    sigma: Tensor  # [D, D]
    schedule: NoiseSchedule

    @classmethod
    def make(cls, seed: int = 0) -> JointGaussian:
        g = torch.Generator().manual_seed(seed)
        mu = torch.rand(D, generator=g, dtype=torch.float64) - 0.5
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
        cov = q @ torch.diag(torch.linspace(0.1, 1.0, D, dtype=torch.float64)) @ q.T
        return cls(mu, cov, NoiseSchedule.linear())

    def denoiser(self, video: Tensor, audio: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The exact eps predictor; differentiable (conditioning backpropagates through it)."""
        b = video.shape[0]
        if not bool((t == t[0]).all()):
            raise AssertionError("samplers call the denoiser with one time per batch")
        x = torch.cat([video.reshape(b, -1), audio.reshape(b, -1)], 1).to(torch.float64)
        alpha, sigma = self.schedule.alpha_sigma(t[0].to(torch.float64))
        cov = alpha**2 * self.sigma + sigma**2 * torch.eye(D, dtype=torch.float64)
        eps = sigma * torch.linalg.solve(cov, (x - alpha * self.mu).T).T
        eps = eps.to(video.dtype)
        return eps[:, :NV].reshape(video.shape), eps[:, NV:].reshape(audio.shape)

    def target_denoiser(self, prediction: str):
        """The exact predictor of `prediction` ("eps", "v" or "x0"), from the exact eps."""

        def denoiser(video: Tensor, audio: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
            ev, ea = self.denoiser(video, audio, t)
            alpha, sigma = (float(s) for s in self.schedule.alpha_sigma(t[0].to(torch.float64)))
            outs = []
            for x, eps in ((video, ev), (audio, ea)):
                x0 = (x - sigma * eps) / alpha
                outs.append({"eps": eps, "x0": x0, "v": alpha * eps - sigma * x0}[prediction])
            return outs[0], outs[1]

        return denoiser

    def whitened_errors(self, x: Tensor) -> tuple[float, float]:
        """For samples x [n, D]: (||z||^2 with z = sqrt(n) L^-1 (mean - mu), ~ chi2_D for exact
        samples; ||L^-1 C L^-T - I||_F with C the sample covariance, ~ sqrt(D (D+1) / n))."""
        n = x.shape[0]
        w = torch.linalg.inv(torch.linalg.cholesky(self.sigma))
        x = x.to(torch.float64)
        z = (x.mean(0) - self.mu) @ w.T * math.sqrt(n)
        cw = w @ torch.cov(x.T) @ w.T
        return float(z.square().sum()), float((cw - torch.eye(D, dtype=torch.float64)).norm())

    def conditional_mean(self, given: str, value: Tensor) -> Tensor:
        """E[generated | given = value], float64 [N_generated]."""
        g, o = (slice(NV, D), slice(0, NV)) if given == "audio" else (slice(0, NV), slice(NV, D))
        return self.mu[o] + self.sigma[o, g] @ torch.linalg.solve(
            self.sigma[g, g], value - self.mu[g]
        )

    def draw(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return (
            self.mu
            + torch.randn(n, D, generator=g, dtype=torch.float64)
            @ torch.linalg.cholesky(self.sigma).T
        )


def flat(video: Tensor, audio: Tensor) -> Tensor:
    return torch.cat([video.reshape(video.shape[0], -1), audio.reshape(audio.shape[0], -1)], 1)
