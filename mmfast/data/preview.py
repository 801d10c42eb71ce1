"""A PNG preview of a clip: its frames side by side above the audio's log-mel spectrogram, on one
time axis so that a sound can be matched with the frame it belongs to."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torchaudio.transforms as T

from mmfast.files import atomic_path


# Files hold what the tensors say: a caller's autocast would turn the resampling and spectrogram
# matmuls into 16-bit ones (and 16-bit tensors numpy cannot take).
@torch.autocast("cpu", enabled=False)
def write_preview(
    path: str | Path, video: torch.Tensor, audio: torch.Tensor, *, audio_rate: int = 16000
) -> Path:
    """Write a PNG of `video` [F, 3, H, W] in [-1, 1] (a strip of its frames) and of `audio` [1, L]
    or [L] in [-1, 1] (log-mel spectrogram, 0 Hz to audio_rate / 2), atomically.

    Example:
        >>> write_preview("samples/0.png", video[0], audio[0])  # [16, 3, 64, 64], [1, 25600]
    """
    # Imported here: matplotlib is slow to import and only previews need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if video.ndim != 4 or video.shape[1] != 3 or video.shape[0] == 0:
        raise ValueError(f"video must be [F, 3, H, W] with F >= 1, got {tuple(video.shape)}")
    if not (audio.ndim == 1 or (audio.ndim == 2 and audio.shape[0] == 1)) or audio.shape[-1] == 0:
        raise ValueError(f"audio must be [1, L] or [L] with L >= 1, got {tuple(audio.shape)}")
    frames = video.shape[0]
    strip = _frame_strip(video)  # [H, F * (W + 1) - 1, 3]
    mel, top_hz = _log_mel(audio.detach().float().cpu().reshape(-1), audio_rate)
    seconds = audio.shape[-1] / audio_rate

    width = min(max(6.0, frames * 0.75), 24.0)
    # Frames share the spectrogram's time axis, so frame k sits above its own stretch of sound;
    # the strip's height keeps its pixels about square.
    strip_h = max(0.3, (width - 1.0) * strip.shape[0] / strip.shape[1])
    figure = Figure(figsize=(width, strip_h + 2.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[strip_h, 2.0])
    top.imshow(strip.numpy(), interpolation="nearest", aspect="auto", extent=(0.0, seconds, 0, 1))
    top.set_yticks([])
    top.set_title(f"{frames} frames", fontsize=9)
    bottom.imshow(
        mel.numpy(), origin="lower", aspect="auto", cmap="magma", extent=(0.0, seconds, 0.0, top_hz)
    )
    for k in range(1, frames):
        bottom.axvline(k * seconds / frames, color="white", lw=0.3, alpha=0.4)
    bottom.set_xlabel("seconds")
    ticks = [f for f in (0, 250, 500, 1000, 2000, 4000, 8000, 16000) if f <= audio_rate / 2]
    bottom.set_yticks([_mel(f) for f in ticks], [str(f) for f in ticks])
    bottom.set_ylabel("Hz")
    bottom.set_title(f"log-mel spectrogram (dB), {audio_rate} Hz", fontsize=9)

    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _frame_strip(video: torch.Tensor) -> torch.Tensor:
    """[F, 3, H, W] in [-1, 1] -> [H, F * (W + 1) - 1, 3] in [0, 1], frames split by white lines."""
    images = ((video.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
    frames, h, w, _ = images.shape
    strip = torch.ones(h, frames * (w + 1) - 1, 3)
    for k in range(frames):
        strip[:, k * (w + 1) : k * (w + 1) + w] = images[k]
    return strip


def _log_mel(audio: torch.Tensor, rate: int) -> tuple[torch.Tensor, float]:
    """[L] -> ([mels, time] power in dB, 80 dB range; top of the mel axis); ~32 ms windows."""
    n_fft = 2 ** max(4, math.ceil(math.log2(0.032 * rate)))
    n_fft = min(n_fft, 2 ** max(1, math.floor(math.log2(len(audio)))))
    spec = T.MelSpectrogram(
        sample_rate=rate, n_fft=n_fft, hop_length=max(1, n_fft // 4), n_mels=_mels(n_fft)
    )(audio)
    return T.AmplitudeToDB(stype="power", top_db=80.0)(spec), _mel(rate / 2)


def _mels(n_fft: int) -> int:
    """Mel bands such that even the lowest one spans a frequency bin (no empty filters)."""
    return max(1, min(64, n_fft // 8))


def _mel(hz: float) -> float:
    """HTK mel scale, torchaudio's default."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)
