"""Loading checkpoints of the original MM-Diffusion release (its `MultimodalUNet` state dicts).

Our module tree follows the release's block indices (`input_blocks.i.j` is `encoder.(i-1).j`,
`middle_blocks.j` is `middle.j`, `output_blocks.i.j` is `decoder.i.j`); inside each block the names
differ and some weights change shape only by size-1 dims: the per-frame Conv2d becomes a Conv3d
(1,k,k), the per-pixel Conv1d a Conv3d (k,1,1), and the 1x1 convs in front of or behind attention
become Linear layers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from mmfast.state_dict import read_state_dict

# kind -> (official -> ours, ours -> official)
_TRANSFORMS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "same": (lambda t: t, lambda t: t),
    "frame_conv": (lambda t: t.unsqueeze(2), lambda t: t.squeeze(2)),
    "temporal_conv": (lambda t: t[..., None, None], lambda t: t[..., 0, 0]),
    "conv1d_as_linear": (lambda t: t[..., 0], lambda t: t[..., None]),
    "conv3d_as_linear": (lambda t: t[..., 0, 0, 0], lambda t: t[..., None, None, None]),
}

# (official name inside a block, ours, kind of the weight; biases are always "same")
_BLOCK_RULES: list[tuple[str, str, str]] = [
    # ResBlock
    ("video_in_layers.0.GroupNorm", "video_in_norm", "same"),
    ("video_in_layers.2.video_conv_spatial", "video_in_conv.spatial", "frame_conv"),
    ("video_in_layers.2.video_conv_temporal", "video_in_conv.temporal", "temporal_conv"),
    ("audio_in_layers.0.GroupNorm", "audio_in_norm", "same"),
    ("audio_in_layers.2.audio_conv", "audio_in_conv", "same"),
    ("emb_layers.1", "emb_proj", "same"),
    ("video_out_layers.0.GroupNorm", "video_out_norm", "same"),
    ("video_out_layers.3.video_conv", "video_out_conv", "same"),
    ("audio_out_layers.0.GroupNorm", "audio_out_norm", "same"),
    ("audio_out_layers.3.audio_conv", "audio_out_conv", "same"),
    ("video_skip_connection.video_conv", "video_skip", "same"),
    ("audio_skip_connection.audio_conv", "audio_skip", "same"),
    ("spatial_attention_block.norm.GroupNorm", "video_attention.spatial.norm", "same"),
    ("spatial_attention_block.qkv", "video_attention.spatial.qkv", "conv1d_as_linear"),
    ("spatial_attention_block.proj_out", "video_attention.spatial.proj", "conv1d_as_linear"),
    ("temporal_attention_block.norm.GroupNorm", "video_attention.temporal.norm", "same"),
    ("temporal_attention_block.qkv", "video_attention.temporal.qkv", "conv1d_as_linear"),
    ("temporal_attention_block.proj_out", "video_attention.temporal.proj", "conv1d_as_linear"),
    ("audio_attention_block.norm.GroupNorm", "audio_attention.norm", "same"),
    ("audio_attention_block.qkv", "audio_attention.qkv", "conv1d_as_linear"),
    ("audio_attention_block.proj_out", "audio_attention.proj", "conv1d_as_linear"),
    # RS-MMA (CrossAttentionBlock)
    ("v_norm.GroupNorm", "video_norm", "same"),
    ("a_norm.GroupNorm", "audio_norm", "same"),
    ("v_qkv", "video_qkv", "conv1d_as_linear"),
    ("a_qkv", "audio_qkv", "conv1d_as_linear"),
    ("video_proj_out.video_conv", "video_proj", "conv3d_as_linear"),
    ("audio_proj_out.audio_conv", "audio_proj", "conv1d_as_linear"),
]

# Whole names outside the numbered blocks.
_TOP_RULES: list[tuple[str, str, str]] = [
    ("time_embed.0", "time_embed.0", "same"),
    ("time_embed.2", "time_embed.2", "same"),
    ("input_blocks.0.0.video_conv.video_conv_spatial", "stem.video_conv.spatial", "frame_conv"),
    (
        "input_blocks.0.0.video_conv.video_conv_temporal",
        "stem.video_conv.temporal",
        "temporal_conv",
    ),
    ("input_blocks.0.0.audio_conv.audio_conv", "stem.audio_conv", "same"),
    ("video_out.0.GroupNorm", "head.video_norm", "same"),
    ("video_out.2.video_conv", "head.video_conv", "same"),
    ("audio_out.0.GroupNorm", "head.audio_norm", "same"),
    ("audio_out.2.audio_conv", "head.audio_conv", "same"),
]

_BLOCK_PREFIX = re.compile(r"^(encoder\.(\d+)|middle|decoder\.(\d+))\.(\d+)\.(.+)$")


def official_name(name: str) -> tuple[str, str]:
    """Our parameter name -> (the release's name, transform kind)."""
    module, _, leaf = name.rpartition(".")
    for official, ours, kind in _TOP_RULES:
        if module == ours:
            return f"{official}.{leaf}", kind if leaf == "weight" else "same"
    m = _BLOCK_PREFIX.match(module)
    if m is None:
        raise KeyError(f"no release name for parameter {name!r}")
    if m.group(2) is not None:
        prefix = f"input_blocks.{int(m.group(2)) + 1}"
    elif m.group(3) is not None:
        prefix = f"output_blocks.{m.group(3)}"
    else:
        prefix = "middle_blocks"
    inner = m.group(5)
    for official, ours, kind in _BLOCK_RULES:
        if inner == ours:
            return f"{prefix}.{m.group(4)}.{official}.{leaf}", kind if leaf == "weight" else "same"
    raise KeyError(f"no release name for parameter {name!r}")


def read_official_state_dict(source: str | Path | dict[str, Tensor]) -> dict[str, Tensor]:
    """A release state dict from a path (loaded without unpickling code) or a dict; a DDP
    `module.` prefix is dropped."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"official checkpoint {path} does not exist")
        sd = read_state_dict(path, what="PyTorch state dict")
    else:
        sd = source
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(
            "an official checkpoint must be a dict of tensors (the model's state dict)"
        )
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def convert_official_state_dict(
    sd: dict[str, Tensor], ours: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Map a release state dict onto our names and shapes; `ours` is our model's state dict.

    Raises ValueError listing missing, unexpected and misshapen tensors.
    """
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    missing, misshapen = [], []
    for name, target in ours.items():
        official, kind = official_name(name)
        if official not in sd:
            missing.append(f"{official} {list(_TRANSFORMS[kind][1](target).shape)}")
            continue
        used.add(official)
        src = sd[official]
        expected = _TRANSFORMS[kind][1](target).shape
        if src.shape != expected:
            misshapen.append(f"{official}: expected {list(expected)}, got {list(src.shape)}")
            continue
        out[name] = _TRANSFORMS[kind][0](src).to(torch.float32)
    check_match(len(ours), missing, misshapen, sorted(set(sd) - used))
    return out


def check_match(
    expected: int, missing: list[str], misshapen: list[str], unexpected: list[str]
) -> None:
    """Raise ValueError listing (the first few of) the missing, misshapen and unexpected tensors
    of a checkpoint that should hold `expected` tensors."""
    problems = []
    for label, items in (
        ("missing", missing),
        ("misshapen", misshapen),
        ("unexpected", unexpected),
    ):
        if items:
            shown = "; ".join(items[:3]) + (
                f"; ... ({len(items) - 3} more)" if len(items) > 3 else ""
            )
            problems.append(f"{len(items)} {label} tensor(s): {shown}")
    if problems:
        hint = ""
        if misshapen and len(misshapen) > expected // 2:
            hint = " | most shapes differ: a checkpoint of another model configuration (preset)?"
        raise ValueError(
            f"official checkpoint does not match the model ({expected} tensors): "
            + " | ".join(problems)
            + hint
        )


def to_official_state_dict(model) -> dict[str, Tensor]:
    """Our model's weights under the release's names and shapes (the inverse of loading)."""
    out = {}
    for name, t in model.state_dict().items():
        official, kind = official_name(name)
        out[official] = _TRANSFORMS[kind][1](t).contiguous()
    return out
