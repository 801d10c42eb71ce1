"""mmfast's own model files: one safetensors file holding the weights and, in its metadata, the
model's kind and config as JSON. Loading unpickles nothing; `mmfast.models.load_model` reads them."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from mmfast.files import atomic_path
from mmfast.models.config import CoupledUNetConfig
from mmfast.models.metadata import read_metadata
from mmfast.models.sr_config import SuperResConfig

# metadata "format" -> (model class name, config class)
FORMATS: dict[str, tuple[str, type]] = {
    "mmfast.CoupledUNet": ("CoupledUNet", CoupledUNetConfig),
    "mmfast.SuperResUNet": ("SuperResUNet", SuperResConfig),
}


def format_of(model: nn.Module) -> str:
    name = f"mmfast.{type(model).__name__}"
    if name not in FORMATS:
        raise TypeError(f"mmfast model files hold {sorted(FORMATS)}, not a {type(model).__name__}")
    return name


def model_config(fmt: str, config_json: str):
    """The config (CoupledUNetConfig or SuperResConfig) of a model of format `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown model format {fmt!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[fmt][1].from_dict(json.loads(config_json))


def save_model(model: nn.Module, path: str | Path) -> None:
    """Write `model` (a CoupledUNet or SuperResUNet) to `path` atomically."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": format_of(model), "config": model.config.to_json()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def read_model_file(path: str | Path) -> tuple[str, object, dict[str, Tensor]]:
    """(format, config, state dict) stored in a model file."""
    metadata = read_metadata(path, what="model file")
    fmt = metadata.get("format")
    if fmt not in FORMATS or "config" not in metadata:
        raise ValueError(
            f"{path} is not an mmfast model file (metadata format {fmt!r}, expected one of "
            f"{sorted(FORMATS)}); original MM-Diffusion .pt files load with load_model too"
        )
    return fmt, model_config(fmt, metadata["config"]), load_file(str(path), device="cpu")
