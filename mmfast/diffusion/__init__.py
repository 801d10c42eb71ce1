"""Gaussian diffusion over (video, audio) pairs: schedule, training loss, samplers, zero-shot
conditioning. The denoiser is always an argument; nothing here imports the model."""

from mmfast.diffusion.conditioning import RELEASE_FP16_SCALE, Condition, GuidanceWeight, Method
from mmfast.diffusion.ddim import DDIM
from mmfast.diffusion.ddpm import DDPM, Variance
from mmfast.diffusion.dpm_solver import DPMSolver
from mmfast.diffusion.dpm_solver_pp import DPMSolverPP
from mmfast.diffusion.loss import DiffusionLoss, diffusion_loss
from mmfast.diffusion.sample import SAMPLERS, make_sampler, sample
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.diffusion.spacing import Spacing

__all__ = [
    "DDIM",
    "DDPM",
    "RELEASE_FP16_SCALE",
    "SAMPLERS",
    "Condition",
    "DPMSolver",
    "DPMSolverPP",
    "DiffusionLoss",
    "GuidanceWeight",
    "Method",
    "NoiseSchedule",
    "Spacing",
    "Variance",
    "diffusion_loss",
    "make_sampler",
    "sample",
]
