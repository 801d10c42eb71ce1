"""Preview clips of the EMA model during training (`--sample-every N`): mp4 + PNG (frames and
spectrogram) in the run folder, from the same seed every time, so that previews are comparable
over the run."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mmfast.data.preview import write_preview
from mmfast.data.write import write_clip
from mmfast.diffusion import sample

PREVIEW_DIR = "previews"
PREVIEW_CLIPS = 2
PREVIEW_STEPS = 20  # DPM-Solver++ steps: enough to see what the model draws


@torch.no_grad()
def preview_clips(model: nn.Module, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PREVIEW_CLIPS clips of `model` (a CoupledUNet): video [N, F, 3, H, W] and audio [N, 1, L]
    in [-1, 1] on the CPU, the noise and the window shifts drawn from `seed` alone."""
    cfg = model.config
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    shifts = torch.Generator().manual_seed(seed + 1)
    video, audio = sample(
        lambda v, a, t: model(v, a, t, generator=shifts),
        (PREVIEW_CLIPS, cfg.video_frames, cfg.video_channels, cfg.video_size, cfg.video_size),
        (PREVIEW_CLIPS, cfg.audio_channels, cfg.audio_length),
        sampler="dpm-solver++",
        steps=PREVIEW_STEPS,
        generator=torch.Generator().manual_seed(seed),
        prediction=cfg.prediction,
        device=param.device,
    )
    model.train(was_training)
    return video.clamp(-1, 1).float().cpu(), audio.clamp(-1, 1).float().cpu()


def write_previews(
    model: nn.Module, run_dir: Path, step: int, *, seed: int, fps: float = 10.0
) -> list[Path]:
    """`preview_clips` of `model` (the EMA weights) written as `previews/step_SSSSSSS_K.mp4` and
    `.png` under `run_dir`. Returns the paths written."""
    video, audio = preview_clips(model, seed)
    cfg = model.config
    rate = round(cfg.audio_length * fps / cfg.video_frames)
    folder = run_dir / PREVIEW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(video.shape[0]):
        stem = folder / f"step_{step:07d}_{k}"
        written.append(
            write_clip(stem.with_suffix(".mp4"), video[k], audio[k], fps=fps, audio_rate=rate)
        )
        written.append(write_preview(stem.with_suffix(".png"), video[k], audio[k], audio_rate=rate))
    return written
