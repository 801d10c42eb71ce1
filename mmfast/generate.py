"""Generating sounding videos with a trained model: loading any model file, batching, seeding,
conditioning on a given clip. The sampling maths is in `mmfast.diffusion`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mmfast.diffusion import Condition, sample
from mmfast.models import CoupledUNet


def load_model(path: str | Path, weights: str = "ema") -> CoupledUNet:
    """A CoupledUNet from a training checkpoint (its EMA or raw weights) or a run directory holding
    one, an mmfast model file, or an original MM-Diffusion .pt checkpoint."""
    path = Path(path)
    if path.is_dir():  # a run directory
        from mmfast.train.trainer import CHECKPOINT

        if not (path / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{path} is a folder without a training {CHECKPOINT}")
        path = path / CHECKPOINT
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


def audio_rate(model: CoupledUNet, fps: float = 10.0) -> int:
    """The audio sample rate in Hz that the model's clip length implies at `fps` (16000 for the
    release's sizes at 10 fps), rounded to a whole number as media files store it."""
    cfg = model.config
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return round(cfg.audio_length * fps / cfg.video_frames)


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
    for name, value in (("num", num), ("batch_size", batch_size), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    cfg = model.config
    param = next(model.parameters())
    model.eval()
    denoise = lambda v, a, t: model(v.to(param.dtype), a.to(param.dtype), t)
    videos, audios = [], []
    clips = None
    if progress:
        from tqdm.auto import tqdm

        clips = tqdm(total=num, desc="clips", unit="clip", dynamic_ncols=True)
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
        if clips is not None:
            clips.update(b)
    if clips is not None:
        clips.close()
    return torch.cat(videos), torch.cat(audios)
