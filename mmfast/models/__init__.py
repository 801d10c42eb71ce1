"""Modules of mmfast: the coupled U-Net of MM-Diffusion and its 64 -> 256 super-resolution U-Net;
`load_model` reads any file that holds one (run folder, training checkpoint, model file, original
.pt)."""

from mmfast.models.config import PRESETS, CoupledUNetConfig, get_config
from mmfast.models.load import load_model
from mmfast.models.sr_config import SR_PRESETS, SuperResConfig, get_sr_config
from mmfast.models.sr_unet import SuperResUNet
from mmfast.models.unet import CoupledUNet

__all__ = [
    "PRESETS",
    "SR_PRESETS",
    "CoupledUNet",
    "CoupledUNetConfig",
    "SuperResConfig",
    "SuperResUNet",
    "get_config",
    "get_sr_config",
    "load_model",
]
