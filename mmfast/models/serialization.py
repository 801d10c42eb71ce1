"""mmfast's own model files: one safetensors file holding the weights and, in its metadata, the
config as JSON. Loading unpickles nothing."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mmfast.files import atomic_path
from mmfast.models.config import CoupledUNetConfig

FORMAT = "mmfast.CoupledUNet"


def save_model(model, path: str | Path) -> None:
    """Write `model` (a CoupledUNet) to `path` atomically."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "config": model.config.to_json()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def read_config(path: str | Path) -> CoupledUNetConfig:
    """The config stored in a model file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path} is not a safetensors file: {err}") from err
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise ValueError(
            f"{path} is not an mmfast model file (metadata format {metadata.get('format')!r}, "
            f"expected {FORMAT!r}); original MM-Diffusion .pt files load with CoupledUNet.from_official"
        )
    return CoupledUNetConfig.from_dict(json.loads(metadata["config"]))


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """The CoupledUNet stored in `path`, on `device`."""
    from mmfast.models.unet import CoupledUNet

    config = read_config(path)
    model = CoupledUNet(config)
    model.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return model.to(device)
