"""Modules of mmfast: the coupled U-Net of MM-Diffusion and its parts."""

from mmfast.models.config import PRESETS, CoupledUNetConfig, get_config
from mmfast.models.unet import CoupledUNet

__all__ = ["PRESETS", "CoupledUNet", "CoupledUNetConfig", "get_config"]
