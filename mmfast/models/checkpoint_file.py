"""What a model needs from a training checkpoint (whose writing and resuming are in
`mmfast.train.checkpoint`): its format, the model's kind and config, and its EMA or raw weights."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open
from torch import Tensor

from mmfast.choice import Choice, choice
from mmfast.models.metadata import read_metadata
from mmfast.models.serialization import model_config

FORMAT = "mmfast.TrainCheckpoint"
CHECKPOINT = "checkpoint.safetensors"  # its name in a run folder


class Weights(Choice):
    EMA = "ema"  # the exponential moving average, what sampling uses
    RAW = "raw"  # the optimizer's weights


def read_checkpoint_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of the training checkpoint `path`; ValueError if it is another file."""
    meta = read_metadata(path, what="checkpoint")
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an mmfast training checkpoint (format {meta.get('format')!r})"
        )
    return meta


def saved_model(meta: dict[str, str]) -> tuple[str, object]:
    """(format, config) of a training checkpoint's model; checkpoints from before the SR stage
    hold a CoupledUNet."""
    fmt = meta.get("model_format", "mmfast.CoupledUNet")
    return fmt, model_config(fmt, meta["model_config"])


def checkpoint_weights(path: str | Path, weights: Weights | str = "ema") -> dict[str, Tensor]:
    """The model's EMA ("ema") or raw ("raw") state dict in the training checkpoint `path`."""
    prefix = {Weights.EMA: "ema.", Weights.RAW: "model."}[choice(Weights, weights, "weights")]
    with safe_open(str(path), framework="pt") as f:
        return {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}  # noqa: SIM118
