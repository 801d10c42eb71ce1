"""`load_model`: the one way to load a model, whatever the file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mmfast.choice import choice
from mmfast.models.checkpoint_file import (
    CHECKPOINT,
    FORMAT,
    Weights,
    checkpoint_weights,
    saved_model,
)
from mmfast.models.config import CoupledUNetConfig
from mmfast.models.metadata import read_metadata
from mmfast.models.official import convert_official_state_dict, read_official_state_dict
from mmfast.models.official_sr import convert_official_sr_state_dict
from mmfast.models.serialization import read_model_file
from mmfast.models.sr_config import SuperResConfig
from mmfast.models.sr_unet import SuperResUNet
from mmfast.models.unet import CoupledUNet

CLASSES: dict[str, type[nn.Module]] = {
    "mmfast.CoupledUNet": CoupledUNet,
    "mmfast.SuperResUNet": SuperResUNet,
}
RELEASE_SUFFIXES = (".pt", ".pth", ".bin")


def load_model(
    source: str | Path | dict[str, Tensor],
    *,
    weights: Weights | str = "ema",
    kind: type[nn.Module] | None = None,
    config: CoupledUNetConfig | SuperResConfig | str | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The model (a CoupledUNet or SuperResUNet, by what the file holds) stored in `source`:

    - a run folder or the training checkpoint in it: its EMA or raw weights (`weights`);
    - an mmfast model file (`model.save(path)`, `mmfast convert-official`);
    - an original MM-Diffusion checkpoint (.pt/.pth/.bin state dict, or the dict itself), coupled
      or super-resolution (told apart by its names), as the model of `config` (default: the
      release's preset, mmdiffusion-64 or sr-256).

    `kind` (CoupledUNet or SuperResUNet) insists on one class: another is a ValueError (and an
    original checkpoint is read as that class). `config` is only for original checkpoints, whose
    files do not say it. The model is returned on `device`, in train mode as constructed.
    """
    weights = choice(Weights, weights, "weights")
    if isinstance(source, dict):
        return _from_release(read_official_state_dict(source), kind, config).to(device)
    path = Path(source)
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{path} is a folder without a training {CHECKPOINT}")
        path = path / CHECKPOINT
    if path.suffix in RELEASE_SUFFIXES:
        return _from_release(read_official_state_dict(path), kind, config).to(device)
    if config is not None:
        raise ValueError(f"{path} names its own config; `config` is for original .pt checkpoints")
    meta = read_metadata(
        path,
        what="checkpoint",
        unreadable="is neither a safetensors file nor an original .pt checkpoint",
    )
    if meta.get("format") == FORMAT:
        fmt, cfg = saved_model(meta)
        state, held = checkpoint_weights(path, weights), "is a training checkpoint of"
    else:
        fmt, cfg, state = read_model_file(path)
        held = "holds"
    cls = CLASSES[fmt]
    if kind is not None and cls is not kind:
        raise ValueError(f"{path} {held} a {cls.__name__}, not a {kind.__name__}")
    model = cls(cfg)
    model.load_state_dict(state, strict=True)
    return model.to(device)


def _from_release(sd: dict[str, Tensor], kind: type[nn.Module] | None, config: object) -> nn.Module:
    """The model of a release state dict: the SR U-Net's names carry no modality."""
    if kind is None:
        kind = (
            CoupledUNet if any(k.startswith("input_blocks.0.0.video") for k in sd) else SuperResUNet
        )
    if kind is CoupledUNet:
        model = CoupledUNet(config or "mmdiffusion-64")
        convert = convert_official_state_dict
    else:
        model = SuperResUNet(config or "sr-256")
        convert = convert_official_sr_state_dict
    model.load_state_dict(convert(sd, model.state_dict()), strict=True)
    return model
