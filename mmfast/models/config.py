"""Configuration of the coupled U-Net, with named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class CoupledUNetConfig:
    """Hyper-parameters of MM-Diffusion's coupled U-Net.

    Resolutions are downsampling factors of the video (1 = the input size, 2 = half, ...); level n
    of the U-Net runs at factor 2**n for video and 4**n for audio.
    """

    video_frames: int = 16
    video_channels: int = 3
    video_size: int = 64
    audio_channels: int = 1
    audio_length: int = 25600
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    # RS-MMA blocks follow every non-resampling ResBlock at these factors, with these windows.
    cross_attention_resolutions: tuple[int, ...] = (2, 4, 8)
    cross_attention_windows: tuple[int, ...] = (1, 4, 8)
    cross_attention_shift: bool = True
    # The middle block's RS-MMA sees all frames (window F, no shift); the release has it.
    middle_cross_attention: bool = True
    video_attention_resolutions: tuple[int, ...] = (2, 4, 8)
    audio_attention_resolutions: tuple[int, ...] = ()
    num_heads: int = 4  # self-attention heads
    cross_head_channels: int = 64  # RS-MMA head width
    norm_groups: int = 32
    max_dilation_exponent: int = 10  # audio conv dilation = 2 ** (n % this)
    dropout: float = 0.0
    attention_backend: str = "auto"
    use_checkpoint: bool = False
    # What the outputs mean, for the samplers: "eps" (the release, and its checkpoints), "v", "x0".
    prediction: str = "eps"

    def __post_init__(self) -> None:
        if self.prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction must be 'eps', 'v' or 'x0', got {self.prediction!r}")
        if len(self.cross_attention_resolutions) != len(self.cross_attention_windows):
            raise ValueError(
                "cross_attention_resolutions and cross_attention_windows must have one entry each, "
                f"got {self.cross_attention_resolutions} and {self.cross_attention_windows}"
            )
        for w in self.cross_attention_windows:
            if not 1 <= w <= self.video_frames:
                raise ValueError(
                    f"cross-attention window {w} must be in [1, video_frames={self.video_frames}]"
                )
        for mult in self.channel_mult:
            ch = mult * self.model_channels
            if ch % self.norm_groups:
                raise ValueError(
                    f"level width {ch} is not divisible by norm_groups={self.norm_groups}"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> CoupledUNetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown CoupledUNetConfig fields {unknown}")
        tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})

    def replace(self, **changes) -> CoupledUNetConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, CoupledUNetConfig] = {
    # The released configuration (Landscape / AIST++ checkpoints): 133,675,524 parameters.
    "mmdiffusion-64": CoupledUNetConfig(),
    # The paper's AudioSet model (supplement, section C): the release's coupled U-Net with base
    # width 256 instead of 128, "other settings remain unchanged"; 534,017,028 parameters.
    "mmdiffusion-audioset": CoupledUNetConfig(model_channels=256),
    # The same structure at 1/8 of the width, on 16 frames of 32x32 video and 4096 audio samples
    # (0.256 s at 16 kHz): about 2.1M parameters, for tests and CPU demos.
    "tiny": CoupledUNetConfig(
        video_size=32,
        audio_length=4096,
        model_channels=16,
        cross_head_channels=16,
        norm_groups=8,
    ),
    # Sized for a CPU demo (see benchmarks/results/learning-curves): 8 frames of 16x16 video and
    # 0.8 s of 2560 Hz audio, three levels, one ResBlock each, self-attention only at the lowest.
    # Its RS-MMA windows stay at shift 0: with the random shift a frame rarely attends to its own
    # audio segment, and the measured sync appears about five times later.
    "demo": CoupledUNetConfig(
        video_frames=8,
        video_size=16,
        audio_length=2048,
        model_channels=16,
        channel_mult=(1, 2, 2),
        num_res_blocks=1,
        cross_attention_resolutions=(2, 4),
        cross_attention_windows=(1, 4),
        cross_attention_shift=False,
        video_attention_resolutions=(4,),
        cross_head_channels=16,
        norm_groups=8,
    ),
}


def get_config(name: str, **overrides) -> CoupledUNetConfig:
    """The preset `name` with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
