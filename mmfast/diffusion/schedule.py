"""The variance-preserving noise schedule shared by training and every sampler.

Times are on the model's scale: tau in [0, T-1] for the T discrete steps, tau = -1 for clean data.
Between integers, log(alpha_bar) is interpolated linearly (DPM-Solver's "discrete" schedule, with
t_continuous = (tau + 1) / T), so the continuous-time samplers and the discrete ones agree exactly
at integer times. Everything is computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class NoiseSchedule:
    """alphas_cumprod: [T] float64, alpha_bar of the discrete steps 0..T-1."""

    alphas_cumprod: Tensor

    def __post_init__(self) -> None:
        acp = self.alphas_cumprod
        if acp.dim() != 1 or acp.dtype != torch.float64:
            raise ValueError(
                f"alphas_cumprod must be a 1-D float64 tensor, got {acp.dtype} {tuple(acp.shape)}"
            )
        if not bool(((acp > 0) & (acp < 1)).all()) or not bool((acp[1:] < acp[:-1]).all()):
            raise ValueError("alphas_cumprod must decrease strictly inside (0, 1)")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def linear(
        cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> NoiseSchedule:
        """DDPM's linear betas, scaled to `num_timesteps` as guided-diffusion does (the release's)."""
        scale = 1000 / num_timesteps
        betas = torch.linspace(
            scale * beta_start, scale * beta_end, num_timesteps, dtype=torch.float64
        )
        return cls(torch.cumprod(1 - betas, 0))

    @classmethod
    def cosine(
        cls, num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999
    ) -> NoiseSchedule:
        """Improved DDPM's cosine schedule."""
        f = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = torch.tensor(
            [
                min(1 - f((i + 1) / num_timesteps) / f(i / num_timesteps), max_beta)
                for i in range(num_timesteps)
            ],
            dtype=torch.float64,
        )
        return cls(torch.cumprod(1 - betas, 0))

    @classmethod
    def from_name(cls, name: str, num_timesteps: int = 1000) -> NoiseSchedule:
        makers = {"linear": cls.linear, "cosine": cls.cosine}
        if name not in makers:
            raise ValueError(f"unknown noise schedule {name!r}; expected one of {sorted(makers)}")
        return makers[name](num_timesteps)

    # ------------------------------------------------------------------ basic quantities
    @property
    def num_timesteps(self) -> int:
        return self.alphas_cumprod.shape[0]

    @property
    def device(self) -> torch.device:
        return self.alphas_cumprod.device

    @property
    def betas(self) -> Tensor:
        prev = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod[:-1]])
        return 1 - self.alphas_cumprod / prev

    def to(self, device: torch.device | str) -> NoiseSchedule:
        return NoiseSchedule(self.alphas_cumprod.to(device))

    def _as_tau(self, tau: Tensor | float) -> Tensor:
        return torch.as_tensor(tau, dtype=torch.float64, device=self.device)

    def log_alpha(self, tau: Tensor | float) -> Tensor:
        """log sqrt(alpha_bar(tau)), piecewise linear in tau over the grid -1, 0, ..., T-1 (float64)."""
        tau = self._as_tau(tau)
        table = torch.cat(
            [self.alphas_cumprod.new_zeros(1), 0.5 * torch.log(self.alphas_cumprod)]
        )  # [T+1] at -1..T-1
        j = torch.clamp(torch.floor(tau).long() + 1, 0, self.num_timesteps - 1)
        frac = tau - (j - 1).to(torch.float64)
        return table[j] + frac * (table[j + 1] - table[j])

    def alpha_bar(self, tau: Tensor | float) -> Tensor:
        return torch.exp(2 * self.log_alpha(tau))

    def alpha_sigma(self, tau: Tensor | float) -> tuple[Tensor, Tensor]:
        """(sqrt(alpha_bar), sqrt(1 - alpha_bar)) at tau, float64."""
        log_alpha = self.log_alpha(tau)
        return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2 * log_alpha))

    def lambda_(self, tau: Tensor | float) -> Tensor:
        """Half log-SNR, log(alpha / sigma)."""
        log_alpha = self.log_alpha(tau)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2 * log_alpha))

    def tau_from_lambda(self, lam: Tensor) -> Tensor:
        """The inverse of `lambda_` on [0, T-1]."""
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lam), -2 * lam).to(torch.float64)
        table = 0.5 * torch.log(self.alphas_cumprod)  # decreasing in tau
        rising = -table
        j = torch.clamp(
            torch.searchsorted(rising, -log_alpha.contiguous()), 1, self.num_timesteps - 1
        )
        lo, hi = table[j - 1], table[j]
        return (j - 1).to(torch.float64) + (log_alpha - lo) / (hi - lo)

    def add_noise(self, x0: Tensor, noise: Tensor, tau: Tensor | float) -> Tensor:
        """q(x_tau | x0) sample: sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise. tau: scalar or [B]."""
        alpha, sigma = self.alpha_sigma(tau)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        alpha = alpha.reshape(shape).to(
            x0.device, torch.float32 if x0.dtype != torch.float64 else torch.float64
        )
        sigma = sigma.reshape(shape).to(alpha.device, alpha.dtype)
        return (alpha * x0 + sigma * noise).to(x0.dtype)
