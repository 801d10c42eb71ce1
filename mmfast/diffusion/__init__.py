"""Gaussian diffusion over (video, audio) pairs: schedule, training loss, samplers, zero-shot
conditioning; and over single images with a learned variance (the super-resolution stage: hybrid
loss, `super_resolve`). The denoiser is always an argument; nothing here imports the model."""

from mmfast.diffusion.conditioning import RELEASE_FP16_SCALE, Condition, GuidanceWeight, Method
from mmfast.diffusion.ddim import DDIM
from mmfast.diffusion.ddpm import DDPM, Variance
from mmfast.diffusion.dpm_solver import DPMSolver
from mmfast.diffusion.dpm_solver_pp import DPMSolverPP
from mmfast.diffusion.learned_variance import HybridLoss, hybrid_loss
from mmfast.diffusion.loss import WEIGHTINGS, DiffusionLoss, Weighting, diffusion_loss
from mmfast.diffusion.prediction import PREDICTIONS, Prediction
from mmfast.diffusion.sample import SAMPLERS, NoiseOrder, make_sampler, sample
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.diffusion.spacing import Spacing
from mmfast.diffusion.super_resolution import super_resolve

__all__ = [
    "DDIM",
    "DDPM",
    "PREDICTIONS",
    "WEIGHTINGS",
    "RELEASE_FP16_SCALE",
    "SAMPLERS",
    "Condition",
    "DPMSolver",
    "DPMSolverPP",
    "DiffusionLoss",
    "HybridLoss",
    "GuidanceWeight",
    "Method",
    "NoiseOrder",
    "NoiseSchedule",
    "Prediction",
    "Spacing",
    "Variance",
    "Weighting",
    "diffusion_loss",
    "hybrid_loss",
    "make_sampler",
    "sample",
    "super_resolve",
]
