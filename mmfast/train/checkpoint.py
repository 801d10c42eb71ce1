"""Training checkpoints: model, EMA, optimizer, grad scaler, step, RNG state and configs in one
safetensors file (tensors) with JSON metadata (everything else). No pickle; written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from mmfast.files import atomic_path
from mmfast.models.checkpoint_file import FORMAT, read_checkpoint_metadata, saved_model
from mmfast.models.serialization import FORMATS, format_of


def _split_optimizer(state: dict) -> tuple[dict[str, Tensor], dict]:
    tensors, rest = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                rest.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "state": rest}


def _join_optimizer(tensors: dict[str, Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    ema,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    step: int,
    train_config_json: str,
    world_size: int,
) -> None:
    tensors: dict[str, Tensor] = {}
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    optim_tensors, optim_meta = _split_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {
        "format": FORMAT,
        "step": str(step),
        "world_size": str(world_size),
        "model_format": format_of(model),
        "model_config": model.config.to_json(),
        "train_config": train_config_json,
        "optimizer": json.dumps(optim_meta),
        "scaler": json.dumps(scaler.state_dict()),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


# How a model runs, which may change when a run resumes (fields of either config class).
_RUNTIME_FIELDS = ("use_checkpoint", "attention_backend")


def _check_same_model(path: Path | str, meta: dict[str, str], config) -> None:
    fmt, saved = saved_model(meta)
    kind = FORMATS[fmt][0]
    if not isinstance(saved, type(config)):
        wanted = next(name for name, cls in FORMATS.values() if cls is type(config))
        raise ValueError(
            f"{path} holds a checkpoint of a {kind}, and this run trains a {wanted}; train into a "
            "new folder"
        )
    saved = saved.replace(**{k: getattr(config, k) for k in _RUNTIME_FIELDS if hasattr(config, k)})
    if saved != config:
        diff = ", ".join(
            f"{k} {a!r} (this run: {b!r})"
            for k, a in saved.to_dict().items()
            if a != (b := getattr(config, k))
        )
        raise ValueError(
            f"{path} holds a checkpoint of another model ({diff}); resume it with the preset and "
            "options it was trained with, or train into a new folder"
        )


def check_resumable(path: str | Path, train_config) -> None:
    """Raise ValueError unless the training checkpoint `path` can resume a run of `train_config`
    (a TrainConfig): an mmfast training checkpoint of the same model. Reads only the header."""
    meta = read_checkpoint_metadata(path)
    config = train_config.model_config().replace(
        use_checkpoint=train_config.activation_checkpointing
    )
    _check_same_model(path, meta, config)


def load_training_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    ema,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> dict[str, str]:
    """Restore everything in place; returns the checkpoint's metadata (its "step" is the next step)."""
    meta = read_checkpoint_metadata(path)
    _check_same_model(path, meta, model.config)
    tensors = load_file(str(path), device="cpu")
    group = lambda prefix: {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    model.load_state_dict(group("model."), strict=True)
    ema.load_state_dict(group("ema."))
    optimizer.load_state_dict(
        _join_optimizer(
            {k: v for k, v in tensors.items() if k.startswith("optim.")},
            json.loads(meta["optimizer"]),
        )
    )
    scaler.load_state_dict(json.loads(meta["scaler"]))
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [
        tensors[f"rng.cuda.{i}"]
        for i in range(torch.cuda.device_count())
        if f"rng.cuda.{i}" in tensors
    ]
    if cuda_states and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    return meta
