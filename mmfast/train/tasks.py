"""What the trainer trains: the coupled U-Net on (video, audio) clips, or the super-resolution U-Net
on (high-res frame, degraded low-res frame) pairs. A task builds the model and the dataset and
computes one batch's loss; the loop, optimisation, checkpoints and DDP are the trainer's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from mmfast.diffusion import NoiseSchedule, diffusion_loss, hybrid_loss
from mmfast.models import CoupledUNet, CoupledUNetConfig, SuperResConfig, SuperResUNet
from mmfast.train.config import TrainConfig
from mmfast.train.data import ClipDataset
from mmfast.train.seeding import step_generator


@dataclass(frozen=True)
class StepInfo:
    """Where a step is: its draws are functions of (seed, rank, step)."""

    seed: int
    rank: int
    step: int
    device: torch.device
    compiled: bool

    def generator(self, stream: str, device: torch.device | None = None) -> torch.Generator:
        return step_generator(self.seed, self.rank, self.step, stream, device or "cpu")


class TrainTask(Protocol):
    name: str

    def build_model(self, config: TrainConfig) -> nn.Module: ...

    def build_dataset(
        self, config: TrainConfig, model: nn.Module, run_dir: Path
    ) -> ClipDataset: ...

    def clip_shape(self, config: TrainConfig, model_cfg) -> dict: ...

    def loss(
        self, forward, model: nn.Module, batch: list[Tensor], schedule: NoiseSchedule, at: StepInfo
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


def _clips(config: TrainConfig, run_dir: Path, **shape):
    """The clips of `config.data` at `shape` (frames, size, audio_rate, interpolation): a clip
    store (checked against the shape) or a folder of videos (decoded while training)."""
    import warnings

    from mmfast.data import ClipStore, MediaWarning, VideoFolderDataset, is_store

    wanted = {"fps": float(config.fps), "resize": str(config.resize), "interpolation": "area"}
    wanted.update(shape)
    if is_store(config.data):
        store = ClipStore(config.data, hflip_p=config.hflip_p)
        have = {k: getattr(store.params, k) for k in wanted}
        if have != wanted:
            raise ValueError(
                f"{config.data} holds clips of {_describe(have)}; the {config.model} preset "
                f"trains on {_describe(wanted)}: make a store for it with `mmfast prepare "
                f"--data FOLDER --out STORE --preset {config.model}`"
            )
        return store
    dataset = VideoFolderDataset(
        config.data,
        fps=config.fps,
        resize=config.resize,
        hflip_p=config.hflip_p,
        index_path=run_dir / "clip_index.json",
        **shape,
    )
    # Only once the folder has shown it holds videos (a folder without any is an error, not this).
    warnings.warn(
        f"{config.data}: decoding the videos while training (about 1-2 clips/s per core for "
        f"720p-1080p sources); `mmfast prepare --data {config.data} --out STORE --preset "
        f"{config.model}` decodes them once into a clip store that reads thousands of clips/s "
        "per core: train with --data STORE",
        MediaWarning,
        stacklevel=3,
    )
    return dataset


def _describe(shape: dict) -> str:
    return (
        f"{shape['frames']} frames at {shape['fps']:g} fps, {shape['size']}x{shape['size']} "
        f"({shape['resize']}, {shape['interpolation']} scaling), sound at {shape['audio_rate']} Hz"
    )


def _synthetic(config: TrainConfig, frames: int, size: int, audio_length: int):
    from mmfast.data.synthetic import SyntheticAVDataset

    return SyntheticAVDataset(
        config.synthetic_clips,
        frames=frames,
        size=size,
        audio_length=audio_length,
        fps=config.fps,
        seed=config.seed,
    )


class CoupledTask:
    """The coupled U-Net: the diffusion loss of the model's prediction target on both modalities,
    a fresh RS-MMA window shift per stage."""

    name = "base"

    def __init__(self, config: TrainConfig):
        self.weights = config.loss_weights  # of the video and audio MSE
        self.weighting = config.loss_weighting
        self.gamma = config.min_snr_gamma

    def build_model(self, config: TrainConfig) -> CoupledUNet:
        return CoupledUNet(
            config.model_config().replace(use_checkpoint=config.activation_checkpointing)
        )

    def build_dataset(
        self, config: TrainConfig, cfg: CoupledUNetConfig, run_dir: Path
    ) -> ClipDataset:
        """The clip store or folder dataset of `config.data`, else the synthetic one, at the
        model's sizes."""
        if config.data is None:
            return _synthetic(config, cfg.video_frames, cfg.video_size, cfg.audio_length)
        return _clips(config, run_dir, **self.clip_shape(config, cfg))

    def clip_shape(self, config: TrainConfig, cfg: CoupledUNetConfig) -> dict:
        """The clips the model trains on: its frames and size, sound at the rate that gives its
        audio length."""
        return dict(
            frames=cfg.video_frames,
            size=cfg.video_size,
            audio_rate=round(cfg.audio_length * config.fps / cfg.video_frames),
        )

    def loss(self, forward, model, batch, schedule, at):
        video, audio = batch
        shifts = model.draw_shifts(video.shape[1], at.generator("shift"))
        if at.compiled:  # tensors: one compiled graph for every shift
            shifts = [
                torch.full((video.shape[0],), r, device=at.device, dtype=torch.long) for r in shifts
            ]
        out = diffusion_loss(
            lambda v, a, t, shifts=shifts: forward(v, a, t, shift=shifts),
            video,
            audio,
            schedule,
            generator=at.generator("diffusion", at.device),
            weights=self.weights,
            prediction=model.config.prediction,
            weighting=self.weighting,
            min_snr_gamma=self.gamma,
        )
        stats = {"video": out.video, "audio": out.audio}
        return out.loss, stats | {"timesteps": out.timesteps, "sample_error": out.sample_error}


class SuperResTask:
    """The SR U-Net: the hybrid loss (eps MSE + variational bound) on single frames, the low-res
    input degraded as the release's training did."""

    name = "sr"

    def build_model(self, config: TrainConfig) -> SuperResUNet:
        return SuperResUNet(
            config.model_config().replace(use_checkpoint=config.activation_checkpointing)
        )

    def build_dataset(self, config: TrainConfig, cfg: SuperResConfig, run_dir: Path) -> ClipDataset:
        """Frames of the store's or folder's videos at 10 fps (one per item, letterboxed with
        bicubic scaling), else of the synthetic clips, at the model's large size."""
        from mmfast.data.sr_frames import SRFrames

        if config.data is None:
            frames = 16
            clips = _synthetic(config, frames, cfg.large_size, 16 * 256)
        else:
            frames = 1
            clips = _clips(config, run_dir, **self.clip_shape(config, cfg))
        return SRFrames(clips, frames, cfg.small_size)

    def clip_shape(self, config: TrainConfig, cfg: SuperResConfig) -> dict:
        """One frame per clip at the large size, scaled bicubic as the release's SR training did
        (so a store for the SR stage is its own: the base stage's clips are area-scaled)."""
        return dict(frames=1, size=cfg.large_size, audio_rate=16000, interpolation="bicubic")

    def loss(self, forward, model, batch, schedule, at):
        high, low = batch
        out = hybrid_loss(
            lambda x, t: forward(x, t, low),
            high,
            schedule,
            generator=at.generator("diffusion", at.device),
        )
        return out.loss, {"mse": out.mse, "vb": out.vb}


def task_for(config: TrainConfig) -> TrainTask:
    """The task of a training config (by its model preset)."""
    return SuperResTask() if config.stage == "sr" else CoupledTask(config)
