"""Generating sounding videos with a trained model (`mmfast.models.load_model` reads any model
file): batching, seeding,
conditioning on a given clip, and the super-resolution stage. The sampling maths is in
`mmfast.diffusion`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from mmfast.choice import choice
from mmfast.data import write_clip, write_preview
from mmfast.diffusion import Condition, NoiseOrder, sample, super_resolve
from mmfast.diffusion.sample import noise_order_of
from mmfast.models import CoupledUNet, SuperResUNet
from mmfast.precision import Precision
from mmfast.ranks import rank_and_world


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
    steps: int | None = None,
    seed: int = 0,
    clips: Sequence[int] | None = None,
    condition_video: Tensor | None = None,
    condition_audio: Tensor | None = None,
    method: str = "guided",
    scale: float | None = None,
    timesteps: str = "uniform",
    noise_order: NoiseOrder | str | None = None,
    precision: Precision | str = "fp32",
    progress: bool = False,
    **sampler_options,
) -> tuple[Tensor, Tensor]:
    """`num` clips: video [num, F, 3, H, W], audio [num, 1, L] in [-1, 1], on the CPU.

    condition_video [F, 3, H, W] or condition_audio [1, L] conditions every clip on that input
    (video->audio or audio->video). `steps`, `timesteps` and `noise_order` are `sample`'s.
    `clips`: which of the `num` clips to make (default all), in that order. Clip k draws from its
    own generator, seeded by `clip_seed(seed, k)`, so it does not depend on the batch size or on
    the other clips made; in the release's noise order (timesteps="release" by default) every
    clip draws in turn from one generator seeded by `seed`, as the release's global RNG after
    `torch.manual_seed(seed)` (all clips, no subset). `precision` "bf16" or "fp16" runs the model
    calls under torch.autocast to that dtype (the norms' statistics and the sampler's arithmetic
    stay fp32); the clips are float32 either way.
    """
    if condition_video is not None and condition_audio is not None:
        raise ValueError("give condition_video or condition_audio, not both")
    for name, value in (("num", num), ("batch_size", batch_size), ("steps", steps)):
        if value is None and name == "steps":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    cfg = model.config
    param = next(model.parameters())
    model.eval()
    amp = choice(Precision, precision, "precision")

    def denoise(v: Tensor, a: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        with amp.autocast(param.device.type):
            return model(v.to(param.dtype), a.to(param.dtype), t)

    ids = list(range(num)) if clips is None else [int(k) for k in clips]
    if any(not 0 <= k < num for k in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"clips must be distinct indices in [0, num={num}), got {clips!r}")
    if noise_order_of(noise_order, timesteps) is NoiseOrder.RELEASE and ids != list(range(num)):
        raise ValueError(
            "the release's noise order makes every clip in turn from one generator: it takes no "
            "clips subset"
        )
    videos, audios = [], []
    bar = None
    if progress:
        bar = tqdm(total=len(ids), desc="clips", unit="clip", dynamic_ncols=True)
    release_gen = torch.Generator().manual_seed(seed)
    for start in range(0, len(ids), batch_size):
        batch_ids = ids[start : start + batch_size]
        b = len(batch_ids)
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
        if noise_order_of(noise_order, timesteps) is NoiseOrder.RELEASE:
            gen = release_gen
        else:
            gen = clip_generators(seed, batch_ids)
        v, a = sample(
            denoise,
            (b, cfg.video_frames, cfg.video_channels, cfg.video_size, cfg.video_size),
            (b, cfg.audio_channels, cfg.audio_length),
            sampler=sampler,
            steps=steps,
            generator=gen,
            condition=condition,
            timesteps=timesteps,
            noise_order=noise_order,
            prediction=cfg.prediction,
            device=param.device,
            progress=progress,
            **sampler_options,
        )
        videos.append(v.clamp(-1, 1).cpu())
        audios.append(a.clamp(-1, 1).cpu())
        if bar is not None:
            bar.update(b)
    if bar is not None:
        bar.close()
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
    precision: Precision | str = "fp32",
    progress: bool = False,
    **sampler_options,
) -> Tensor:
    """The SR stage: videos [N, F, 3, s, s] in [-1, 1] -> [N, F, 3, S, S] (s, S: the SR model's
    small and large sizes), the release's rule by default (DDIM 25 on its ddim25 times, eta 0, one
    noise per clip shared by its frames, the frames fed in raw). Frames go through the model in
    batches of `batch_size` (default: as many as fit in memory, `sr_batch_size`); the result does
    not depend on it. `precision` is `generate`'s."""
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
    amp = choice(Precision, precision, "precision")

    def denoise(x: Tensor, t: Tensor, low: Tensor) -> Tensor:
        with amp.autocast(param.device.type):
            return model(x.to(param.dtype), t, low.to(param.dtype))

    high = super_resolve(
        denoise,
        frames,
        cfg.large_size,
        sampler=sampler,
        steps=steps,
        group=f,
        generator=torch.Generator().manual_seed((seed * 1_000_003 + 7) % 2**63),  # any int seed
        batch_size=batch_size,
        progress=progress,
        **sampler_options,
    )
    return high.clamp(-1, 1).reshape(n, f, *high.shape[1:]).cpu()


def clip_seed(seed: int, k: int) -> int:
    """The seed of clip k of a run seeded by `seed`: a well-mixed 63-bit function of (seed, k)
    alone (numpy's SeedSequence), so a clip does not depend on its batch or process."""
    hi, lo = np.random.SeedSequence([seed, k]).generate_state(2, np.uint32).tolist()
    return ((hi << 32) | lo) & (2**63 - 1)


def clip_generators(seed: int, clips: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per clip index, seeded by `clip_seed`."""
    return [torch.Generator().manual_seed(clip_seed(seed, k)) for k in clips]


def clip_name(k: int) -> str:
    """The file stem of clip k: sample_000, sample_001, ... (more digits past 999)."""
    return f"sample_{k:03d}"


def missing_clips(out: str | Path, num: int, *, sr: bool = False) -> list[int]:
    """The clip indices in [0, num) whose files are not all in `out` (mp4 and png, and with `sr`
    the _sr pair); every file is written atomically, so a file that exists is whole."""
    out = Path(out)
    suffixes = ["", "_sr"] if sr else [""]
    return [
        k
        for k in range(num)
        if not all(
            (out / f"{clip_name(k)}{s}{e}").is_file() for s in suffixes for e in (".mp4", ".png")
        )
    ]


def generate_to_folder(
    model: CoupledUNet,
    out: str | Path,
    num: int,
    *,
    batch_size: int = 4,
    seed: int = 0,
    fps: float = 10.0,
    sr_model: SuperResUNet | None = None,
    sr_options: dict | None = None,
    progress: bool = False,
    **options,
) -> list[int]:
    """Clips 0..num-1 as `out`/sample_NNN.mp4 + .png (and with `sr_model`, sample_NNN_sr.mp4 +
    .png upsampled by it with `sr_options`, `upsample`'s), each written atomically; `options` go
    to `generate`. Returns the clips made (by every process).

    Clip k is a function of (seed, k) alone, the SR stage's too. Clips whose files are all there
    are skipped, so a killed run continues where it stopped. Under torchrun (a process group
    initialised) the missing clips are split over the ranks (clip i of the list to rank
    i mod N); rank 0 shows one progress bar of all of them, counting its own pace times N. In
    the release's noise order every clip comes from one generator in turn, as in the release: then
    all clips are made, in one process.
    """
    out = Path(out)
    rank, world = rank_and_world()
    release = (
        noise_order_of(options.get("noise_order"), options.get("timesteps", "uniform"))
        is NoiseOrder.RELEASE
    )
    if release and world > 1:
        raise ValueError(
            "the release's noise order draws every clip from one generator in turn; it cannot be "
            "split over processes: run it in one process, or use noise_order='mmfast'"
        )
    todo = list(range(num)) if release else missing_clips(out, num, sr=sr_model is not None)
    if world > 1:
        dist.barrier()  # every rank has listed the missing clips before any is written
    mine = todo[rank::world]
    bar = None
    if progress and rank == 0:
        desc = "clips" + (f" (rank 0's pace x {world})" if world > 1 else "")
        bar = tqdm(total=len(todo), desc=desc, unit="clip", dynamic_ncols=True)
    rate = audio_rate(model, fps)
    # The release's order: one generator through every clip, so one call makes them all.
    chunks = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    for ids in [mine] if release else chunks:
        videos, audios = generate(
            model, num, clips=None if release else ids, batch_size=batch_size, seed=seed, **options
        )
        for i, k in enumerate(ids):
            name = clip_name(k)
            write_clip(out / f"{name}.mp4", videos[i], audios[i], fps=fps, audio_rate=rate)
            write_preview(out / f"{name}.png", videos[i], audios[i], audio_rate=rate)
            if sr_model is not None:
                high = upsample(
                    sr_model, videos[i : i + 1], seed=clip_seed(seed, k), **(sr_options or {})
                )[0]
                write_clip(out / f"{name}_sr.mp4", high, audios[i], fps=fps, audio_rate=rate)
                write_preview(out / f"{name}_sr.png", high, audios[i], audio_rate=rate)
        if bar is not None:
            bar.update(min(len(ids) * world, bar.total - bar.n))
    if bar is not None:
        bar.close()
    if world > 1:
        dist.barrier()
    return todo
