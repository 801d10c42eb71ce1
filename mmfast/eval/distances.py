"""Distances between two sets of features: Fréchet (FVD, FAD) and kernel (KVD) distances."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

# Callers of pytorch-fid's and TF-GAN's functions hold numpy arrays; every function here takes both.
Array = Tensor | np.ndarray


def _tensor(x: Array, name: str) -> Tensor:
    """A tensor (detached) of `x`, which may be a numpy array."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, Tensor):
        return x.detach()
    raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(x).__name__}")


def gaussian_stats(feats: Array) -> tuple[Tensor, Tensor]:
    """feats [N, D] (tensor or numpy) -> (mean [D], unbiased covariance [D, D]), float64."""
    feats = _tensor(feats, "feats")
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"expected features [N >= 2, D], got {tuple(feats.shape)}")
    x = feats.to(torch.float64)
    return x.mean(0), torch.cov(x.T, correction=1).reshape(x.shape[1], x.shape[1])


def _psd_eigvals(w: Tensor) -> Tensor:
    """Eigenvalues of a symmetric PSD matrix with round-off zeros made zero: below
    D * eps * max they are noise (square roots would turn 1e-16 into 1e-8 each)."""
    cutoff = w.shape[-1] * torch.finfo(w.dtype).eps * w.abs().max()
    return torch.where(w > cutoff, w, torch.zeros_like(w))


def _psd_sqrt(mat: Tensor) -> Tensor:
    """The symmetric square root of a symmetric PSD matrix."""
    w, v = torch.linalg.eigh((mat + mat.T) / 2)
    return (v * _psd_eigvals(w).sqrt()) @ v.T


def frechet_distance(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), in float64.

    mu: [D], sigma: [D, D], tensors or numpy arrays (pytorch-fid's `calculate_frechet_distance`
    argument order; its `eps` is not needed). The trace term goes through the symmetric PSD matrix
    S1^1/2 S2 S1^1/2, whose eigenvalues are those of S1 S2, so singular covariances (fewer
    samples than dimensions) need no regularising epsilon.
    """
    mu1, mu2 = _tensor(mu1, "mu1").to(torch.float64), _tensor(mu2, "mu2").to(torch.float64)
    s1 = _tensor(sigma1, "sigma1").to(torch.float64)
    s2 = _tensor(sigma2, "sigma2").to(torch.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"expected mu1, mu2 [D] and sigma1, sigma2 [D, D]; got {tuple(mu1.shape)}, "
            f"{tuple(mu2.shape)}, {tuple(s1.shape)}, {tuple(s2.shape)}"
        )
    root = _psd_sqrt(s1)
    middle = root @ s2 @ root
    trace_sqrt = _psd_eigvals(torch.linalg.eigvalsh((middle + middle.T) / 2)).sqrt().sum()
    value = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return float(value)


def frechet_distance_release(feats1: Array, feats2: Array) -> float:
    """The release's FVD / FAD arithmetic (TF-GAN's, in float32 torch): unbiased covariances,
    symmetric square roots by SVD with singular values under 1e-10 kept unrooted.
    feats: [N, D], tensors or numpy arrays."""

    def sqrtm(mat: Tensor) -> Tensor:
        u, s, vh = torch.linalg.svd(mat)
        s = torch.where(s < 1e-10, s, s.sqrt())
        return u @ torch.diag(s) @ vh

    x1 = _tensor(feats1, "feats1").to(torch.float32)
    x2 = _tensor(feats2, "feats2").to(torch.float32)
    m1, m2 = x1.mean(0), x2.mean(0)
    c1 = (x1 - m1).T @ (x1 - m1) / (x1.shape[0] - 1)
    c2 = (x2 - m2).T @ (x2 - m2) / (x2.shape[0] - 1)
    root = sqrtm(c1)
    trace_sqrt = sqrtm(root @ c2 @ root).trace()
    return float((c1 + c2).trace() - 2 * trace_sqrt + (m1 - m2).square().sum())


class KernelDistance(NamedTuple):
    """An MMD^2 estimate: over all pairs (std 0, subsets 0) or the mean and standard deviation
    over `subsets` random subsets."""

    mean: float
    std: float
    subsets: int


def _mmd2_unbiased(x: Tensor, y: Tensor, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 with the polynomial kernel (gamma <x, y> + coef0)^degree, diagonals out."""
    m, n = x.shape[0], y.shape[0]
    kxx = (gamma * (x @ x.T) + coef0) ** degree
    kyy = (gamma * (y @ y.T) + coef0) ** degree
    kxy = (gamma * (x @ y.T) + coef0) ** degree
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kernel_distance(
    feats1: Array,
    feats2: Array,
    *,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    subsets: int | None = None,
    subset_size: int | None = None,
    generator: torch.Generator | None = None,
) -> KernelDistance:
    """Unbiased polynomial-kernel MMD^2 between feats1 [M, D] and feats2 [N, D] (tensors or
    numpy arrays), in float64.

    The kernel is scikit-learn's `polynomial_kernel` (gamma defaults to 1 / D). `subsets=None`:
    one pass over all pairs (the release's KVD). Otherwise the mean and spread over `subsets`
    draws of `subset_size` rows (default min(M, N, 1000)) from each side without replacement,
    drawn from `generator` (KID's estimator).
    """
    feats1, feats2 = _tensor(feats1, "feats1"), _tensor(feats2, "feats2")
    if feats1.ndim != 2 or feats2.ndim != 2 or feats1.shape[1] != feats2.shape[1]:
        raise ValueError(
            f"expected features [M, D] and [N, D], got {tuple(feats1.shape)} and "
            f"{tuple(feats2.shape)}"
        )
    x, y = feats1.to(torch.float64), feats2.to(torch.float64)
    if min(x.shape[0], y.shape[0]) < 2:
        raise ValueError("each side needs at least 2 feature rows")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    if subsets is None:
        return KernelDistance(_mmd2_unbiased(x, y, degree, gamma, coef0), 0.0, 0)
    size = subset_size or min(x.shape[0], y.shape[0], 1000)
    if subsets < 1 or not 2 <= size <= min(x.shape[0], y.shape[0]):
        raise ValueError(
            f"subsets must be >= 1 and subset_size in [2, {min(x.shape[0], y.shape[0])}], got "
            f"{subsets} and {size}"
        )
    values = []
    for _ in range(subsets):
        i = torch.randperm(x.shape[0], generator=generator)[:size]
        j = torch.randperm(y.shape[0], generator=generator)[:size]
        values.append(_mmd2_unbiased(x[i], y[j], degree, gamma, coef0))
    std = float(torch.tensor(values).std()) if subsets > 1 else 0.0
    return KernelDistance(math.fsum(values) / subsets, std, subsets)
