"""Evaluation: FVD, KVD and FAD with feature extractors written here that load the standard
weight files strictly and never download."""

from mmfast.eval.distances import (
    KernelDistance,
    frechet_distance,
    frechet_distance_release,
    gaussian_stats,
    kernel_distance,
)

__all__ = [
    "KernelDistance",
    "frechet_distance",
    "frechet_distance_release",
    "gaussian_stats",
    "kernel_distance",
]
