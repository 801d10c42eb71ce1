"""Configuration of the 64 -> 256 super-resolution U-Net, with named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class SuperResConfig:
    """Hyper-parameters of the release's super-resolution model (guided-diffusion's SR U-Net).

    The model sees cat([x_t, bilinear-upsampled low_res]) (2 x `channels` inputs) and predicts
    eps and, with `learn_sigma`, the variance interpolation values (2 x `channels` outputs).
    Attention runs at these downsampling factors of `large_size` (8, 16, 32: 32x32, 16x16, 8x8
    at 256) and in the middle block.
    """

    large_size: int = 256
    small_size: int = 64
    channels: int = 3
    model_channels: int = 192
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (8, 16, 32)
    num_heads: int = 4
    num_heads_upsample: int = 4
    norm_groups: int = 32
    dropout: float = 0.0
    learn_sigma: bool = True
    use_checkpoint: bool = False

    def __post_init__(self) -> None:
        for mult in self.channel_mult:
            ch = mult * self.model_channels
            if ch % self.norm_groups:
                raise ValueError(
                    f"level width {ch} is not divisible by norm_groups={self.norm_groups}"
                )
            for heads in (self.num_heads, self.num_heads_upsample):
                if ch % heads:
                    raise ValueError(f"level width {ch} is not divisible by {heads} heads")
        levels = len(self.channel_mult) - 1
        if self.large_size % 2**levels:
            raise ValueError(
                f"large_size {self.large_size} must be divisible by 2**{levels} for "
                f"{len(self.channel_mult)} levels"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def in_channels(self) -> int:
        return 2 * self.channels

    @property
    def out_channels(self) -> int:
        return 2 * self.channels if self.learn_sigma else self.channels

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> SuperResConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown SuperResConfig fields {unknown}")
        tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})

    def replace(self, **changes) -> SuperResConfig:
        return dataclasses.replace(self, **changes)


SR_PRESETS: dict[str, SuperResConfig] = {
    # The release's SR model (Landscape / AIST++ SR checkpoints): 311,027,910 parameters.
    "sr-256": SuperResConfig(),
    # The same structure at 1/6 of the width with three levels, 32 -> 128 (4x, as the release):
    # the `tiny` base model's 32x32 frames, for tests and CPUs.
    "tiny-sr": SuperResConfig(
        large_size=128,
        small_size=32,
        model_channels=32,
        channel_mult=(1, 2, 2),
        num_res_blocks=1,
        attention_resolutions=(4,),  # 32x32
        num_heads=2,
        num_heads_upsample=2,
        norm_groups=8,
    ),
}


def get_sr_config(name: str, **overrides) -> SuperResConfig:
    """The SR preset `name` with optional field overrides."""
    if name not in SR_PRESETS:
        raise ValueError(f"unknown SR preset {name!r}; expected one of {sorted(SR_PRESETS)}")
    return SR_PRESETS[name].replace(**overrides) if overrides else SR_PRESETS[name]
