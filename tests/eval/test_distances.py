"""Fréchet and kernel distances against closed forms, SciPy and a brute-force pair sum."""

from __future__ import annotations

import itertools

import pytest
import torch

from mmfast.eval.distances import (
    frechet_distance,
    frechet_distance_release,
    gaussian_stats,
    kernel_distance,
)


def _random_cov(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_of_diagonal_gaussians_is_the_closed_form(gen):
    d = 7
    f64 = {"generator": gen, "dtype": torch.float64}
    mu1, mu2 = torch.randn(d, **f64), torch.randn(d, **f64)
    a, b = torch.rand(d, **f64) + 0.1, torch.rand(d, **f64) + 0.1
    expected = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    got = frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
    assert got == pytest.approx(float(expected), rel=1e-10)


def test_frechet_matches_scipy_sqrtm_for_full_covariances(gen):
    linalg = pytest.importorskip("scipy.linalg")
    d = 12
    mu1, mu2 = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen)
    s1, s2 = _random_cov(d, gen), _random_cov(d, gen)
    covmean = linalg.sqrtm((s1 @ s2).numpy()).real
    expected = float((mu1 - mu2.double()).square().sum() + s1.trace() + s2.trace()) - 2 * float(
        covmean.trace()
    )
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_of_identical_statistics_is_zero_even_when_singular(gen):
    feats = torch.randn(5, 40, generator=gen)  # 5 samples in 40 dims: rank-4 covariance
    mu, sigma = gaussian_stats(feats)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    assert frechet_distance(mu, sigma, mu + 1, sigma) == pytest.approx(40.0, rel=1e-9)


def test_release_arithmetic_agrees_with_float64_on_well_conditioned_features(gen):
    d, n = 16, 4000
    x = torch.randn(n, d, generator=gen)
    y = torch.randn(n, d, generator=gen) * 1.3 + 0.2
    fd64 = frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    assert frechet_distance_release(x, y) == pytest.approx(fd64, rel=1e-3)
    closed = d * 0.2**2 + d * (1 - 1.3) ** 2  # the populations' distance
    assert fd64 == pytest.approx(closed, rel=0.1)


def _mmd_pairs(x, y, degree=3, coef0=1.0):
    """The unbiased MMD^2 written as sums over pairs (i != j within a side)."""
    gamma = 1.0 / x.shape[1]
    k = lambda a, b: (gamma * float(a @ b) + coef0) ** degree
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_kernel_distance_over_all_pairs_is_the_pair_sum(gen):
    x = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(7, 5, generator=gen, dtype=torch.float64) + 0.5
    kd = kernel_distance(x, y)
    assert kd.subsets == 0 and kd.std == 0.0
    assert kd.mean == pytest.approx(_mmd_pairs(x, y), rel=1e-12)
    assert kernel_distance(x, y, degree=2, coef0=0.5).mean == pytest.approx(
        _mmd_pairs(x, y, 2, 0.5), rel=1e-12
    )


def test_kernel_distance_is_unbiased_and_separates_distributions(gen):
    same = [
        kernel_distance(torch.randn(50, 4, generator=gen), torch.randn(50, 4, generator=gen)).mean
        for _ in range(200)
    ]
    mean = sum(same) / len(same)
    spread = torch.tensor(same).std().item() / len(same) ** 0.5
    assert abs(mean) < 4 * spread  # unbiased: zero in expectation, negative values allowed
    shifted = kernel_distance(
        torch.randn(50, 4, generator=gen), torch.randn(50, 4, generator=gen) + 1
    )
    assert shifted.mean > 20 * spread


def test_kernel_distance_subsets_are_seeded(gen):
    x, y = torch.randn(60, 3, generator=gen), torch.randn(60, 3, generator=gen) + 0.3
    runs = [
        kernel_distance(
            x, y, subsets=10, subset_size=20, generator=torch.Generator().manual_seed(4)
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0].subsets == 10 and runs[0].std > 0
    assert kernel_distance(x, y, subsets=1, subset_size=60).mean == pytest.approx(
        kernel_distance(x, y).mean, rel=1e-12
    )
    with pytest.raises(ValueError, match="subset_size"):
        kernel_distance(x, y, subsets=3, subset_size=61)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"\[D, D\]"):
        frechet_distance(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        kernel_distance(torch.zeros(4, 3), torch.zeros(4, 2))


def test_numpy_arrays_give_the_numbers_of_tensors(gen):
    """Callers of pytorch-fid pass numpy statistics; the package exports the distances."""
    from mmfast.eval import frechet_distance as fd
    from mmfast.eval import gaussian_stats as stats
    from mmfast.eval import kernel_distance as kd

    x = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(30, 6, generator=gen, dtype=torch.float64) + 0.5
    (mx, sx), (my, sy) = stats(x), stats(y)
    from_numpy = fd(mx.numpy(), sx.numpy(), my.numpy(), sy.numpy())
    assert from_numpy == fd(mx, sx, my, sy) and from_numpy > 0
    assert [t.tolist() for t in stats(x.numpy())] == [mx.tolist(), sx.tolist()]
    assert kd(x.numpy(), y.numpy().astype("float32")) == kd(x, y.float())
    assert frechet_distance_release(x.numpy(), y.numpy()) == frechet_distance_release(x, y)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        fd(mx.tolist(), sx, my, sy)
