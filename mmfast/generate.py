"""Generating sounding videos with a trained model: loading any model file, batching, seeding,
conditioning on a given clip. The sampling maths is in `mmfast.diffusion`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mmfast.diffusion import Condition, sample
from mmfast.models import CoupledUNet


def load_model(path: str | Path, weights: str = "ema") -> CoupledUNet:
    """A CoupledUNet from a training checkpoint (its EMA or raw weights), an mmfast model file, or
    an original MM-Diffusion .pt checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix in (".pt", ".pth", ".bin"):
        return CoupledUNet.from_official(path)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            fmt = (f.metadata() or {}).get("format")
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(
            f"{path} is neither a safetensors file nor an original .pt checkpoint: {err}"
        ) from err
    if fmt == "mmfast.TrainCheckpoint":
        from mmfast.train.checkpoint import load_checkpoint_model

        return load_checkpoint_model(path, weights)
    return CoupledUNet.load(path)


def audio_rate(model: CoupledUNet, fps: float = 10.0) -> float:
    """The audio sample rate the model's clip length implies (16 kHz for the release's sizes)."""
    cfg = model.config
    return cfg.audio_length * fps / cfg.video_frames


def generate(
    model: CoupledUNet,
    num: int,
    *,
    batch_size: int = 4,
    sampler: str = "dpm-solver++",
    steps: int = 20,
    seed: int = 0,
    condition_video: Tensor | None = None,
    condition_audio: Tensor | None = None,
    method: str = "guided",
    scale: float | None = None,
    progress: bool = False,
    **sampler_options,
) -> tuple[Tensor, Tensor]:
    """`num` clips: video [num, F, 3, H, W], audio [num, 1, L] in [-1, 1], on the CPU.

    condition_video [F, 3, H, W] or condition_audio [1, L] conditions every clip on that input
    (video->audio or audio->video). Batch k is seeded by (seed, k).
    """
    if condition_video is not None and condition_audio is not None:
        raise ValueError("give condition_video or condition_audio, not both")
    cfg = model.config
    param = next(model.parameters())
    model.eval()
    denoise = lambda v, a, t: model(v.to(param.dtype), a.to(param.dtype), t)
    videos, audios = [], []
    for k, start in enumerate(range(0, num, batch_size)):
        b = min(batch_size, num - start)
        condition = None
        for modality, value in (("video", condition_video), ("audio", condition_audio)):
            if value is not None:
                batch = (
                    value.to(param.device, torch.float32)
                    .unsqueeze(0)
                    .expand(b, *value.shape)
                    .contiguous()
                )
                kwargs = {} if scale is None else {"scale": scale}
                condition = Condition(modality, batch, method=method, **kwargs)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + k)
        v, a = sample(
            denoise,
            (b, cfg.video_frames, cfg.video_channels, cfg.video_size, cfg.video_size),
            (b, cfg.audio_channels, cfg.audio_length),
            sampler=sampler,
            steps=steps,
            generator=gen,
            condition=condition,
            device=param.device,
            progress=progress,
            **sampler_options,
        )
        videos.append(v.clamp(-1, 1).cpu())
        audios.append(a.clamp(-1, 1).cpu())
    return torch.cat(videos), torch.cat(audios)
