"""mmfast's own model files: one safetensors file holding the weights and, in its metadata, the
model's kind and config as JSON. Loading unpickles nothing."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mmfast.files import atomic_path
from mmfast.models.config import CoupledUNetConfig
from mmfast.models.sr_config import SuperResConfig

# metadata "format" -> (model class name, config class); the classes are imported on use.
FORMATS: dict[str, tuple[str, type]] = {
    "mmfast.CoupledUNet": ("CoupledUNet", CoupledUNetConfig),
    "mmfast.SuperResUNet": ("SuperResUNet", SuperResConfig),
}


def format_of(model) -> str:
    name = f"mmfast.{type(model).__name__}"
    if name not in FORMATS:
        raise TypeError(f"mmfast model files hold {sorted(FORMATS)}, not a {type(model).__name__}")
    return name


def model_class(fmt: str) -> type:
    from mmfast.models.sr_unet import SuperResUNet
    from mmfast.models.unet import CoupledUNet

    return {"CoupledUNet": CoupledUNet, "SuperResUNet": SuperResUNet}[FORMATS[fmt][0]]


def save_model(model, path: str | Path) -> None:
    """Write `model` (a CoupledUNet or SuperResUNet) to `path` atomically."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": format_of(model), "config": model.config.to_json()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def read_header(path: str | Path) -> tuple[str, object]:
    """(format, config) stored in a model file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path} is not a safetensors file: {err}") from err
    fmt = metadata.get("format")
    if fmt not in FORMATS or "config" not in metadata:
        raise ValueError(
            f"{path} is not an mmfast model file (metadata format {fmt!r}, expected one of "
            f"{sorted(FORMATS)}); original MM-Diffusion .pt files load with from_official"
        )
    return fmt, FORMATS[fmt][1].from_dict(json.loads(metadata["config"]))


def read_config(path: str | Path):
    """The config stored in a model file."""
    return read_header(path)[1]


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """The model stored in `path` (a CoupledUNet or SuperResUNet), on `device`."""
    fmt, config = read_header(path)
    model = model_class(fmt)(config)
    model.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return model.to(device)
