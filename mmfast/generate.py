"""Generating sounding videos with a trained model: loading any model file, batching, seeding,
conditioning on a given clip, and the super-resolution stage. The sampling maths is in
`mmfast.diffusion`."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from mmfast.diffusion import Condition, sample, super_resolve
from mmfast.models import CoupledUNet, SuperResUNet


def load_model(path: str | Path, weights: str = "ema", kind: type = CoupledUNet):
    """A model of class `kind` (CoupledUNet, or SuperResUNet for the SR stage) from a training
    checkpoint (its EMA or raw weights) or a run directory holding one, an mmfast model file, or
    an original MM-Diffusion .pt checkpoint."""
    path = Path(path)
    if path.is_dir():  # a run directory
        from mmfast.train.trainer import CHECKPOINT

        if not (path / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{path} is a folder without a training {CHECKPOINT}")
        path = path / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix in (".pt", ".pth", ".bin"):
        return kind.from_official(path)
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

        model = load_checkpoint_model(path, weights)
        if not isinstance(model, kind):
            raise ValueError(
                f"{path} is a training checkpoint of a {type(model).__name__}, not a {kind.__name__}"
            )
        return model
    return kind.load(path)


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
    timesteps: str = "uniform",
    progress: bool = False,
    **sampler_options,
) -> tuple[Tensor, Tensor]:
    """`num` clips: video [num, F, 3, H, W], audio [num, 1, L] in [-1, 1], on the CPU.

    condition_video [F, 3, H, W] or condition_audio [1, L] conditions every clip on that input
    (video->audio or audio->video). Batch k is seeded by (seed, k). timesteps="release" samples
    as the release did (see `mmfast.diffusion.sample`), every batch in turn from one generator
    seeded by `seed`, as its global RNG after `torch.manual_seed(seed)`.
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
    release_gen = torch.Generator().manual_seed(seed)
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
        if timesteps == "release":
            gen = release_gen
        else:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + k)
        v, a = sample(
            denoise,
            (b, cfg.video_frames, cfg.video_channels, cfg.video_size, cfg.video_size),
            (b, cfg.audio_channels, cfg.audio_length),
            sampler=sampler,
            steps=steps,
            generator=gen,
            condition=condition,
            timesteps=timesteps,
            prediction=cfg.prediction,
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


def sr_batch_size(model: SuperResUNet, device: torch.device, dtype: torch.dtype) -> int:
    """Frames per SR call that fit in half the device's free memory (CUDA's free memory, else
    the machine's available RAM), by the model's own estimate of a frame's activations."""
    per_frame = model.inference_bytes_per_image(dtype)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not a POSIX system
            free = 4 * 2**30
    return max(1, int(0.5 * free // per_frame))


def upsample(
    model: SuperResUNet,
    videos: Tensor,
    *,
    sampler: str = "ddim",
    steps: int = 25,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = False,
    **sampler_options,
) -> Tensor:
    """The SR stage: videos [N, F, 3, s, s] in [-1, 1] -> [N, F, 3, S, S] (s, S: the SR model's
    small and large sizes), the release's rule by default (DDIM 25 on its ddim25 times, eta 0, one
    noise per clip shared by its frames, the frames fed in raw). Frames go through the model in
    batches of `batch_size` (default: as many as fit in memory, `sr_batch_size`); the result does
    not depend on it."""
    cfg = model.config
    if videos.dim() != 5 or tuple(videos.shape[2:]) != (
        cfg.channels,
        cfg.small_size,
        cfg.small_size,
    ):
        raise ValueError(
            f"the SR model upsamples frames of {cfg.small_size}x{cfg.small_size}: videos must be "
            f"[N, F, {cfg.channels}, {cfg.small_size}, {cfg.small_size}], got {tuple(videos.shape)}"
        )
    n, f = videos.shape[:2]
    param = next(model.parameters())
    model.eval()
    if batch_size is None:
        batch_size = sr_batch_size(model, param.device, param.dtype)
    frames = videos.reshape(n * f, *videos.shape[2:]).to(param.device, torch.float32)
    high = super_resolve(
        lambda x, t, low: model(x.to(param.dtype), t, low.to(param.dtype)),
        frames,
        cfg.large_size,
        sampler=sampler,
        steps=steps,
        group=f,
        generator=torch.Generator().manual_seed(seed * 1_000_003 + 7),
        batch_size=batch_size,
        progress=progress,
        **sampler_options,
    )
    return high.clamp(-1, 1).reshape(n, f, *high.shape[1:]).cpu()
