"""Mux a generated clip into an .mp4 that ordinary players open: H.264 (yuv420p) + AAC, faststart."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from mmfast.data.pyav import av
from mmfast.files import atomic_path

# AAC sample rates that players handle everywhere; others (the tiny preset's 2560 Hz) are resampled.
_PLAYER_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
_AAC_FRAME = 1024


# Files hold what the tensors say: a caller's autocast would turn the resampling and spectrogram
# matmuls into 16-bit ones (and 16-bit tensors numpy cannot take).
@torch.autocast("cpu", enabled=False)
def write_clip(
    path: str | Path,
    video: torch.Tensor,
    audio: torch.Tensor,
    *,
    fps: float = 10,
    audio_rate: int = 16000,
    scale: int = 1,
    crf: int = 18,
) -> Path:
    """Write `video` and `audio` to the .mp4 `path` atomically (a crash leaves no partial file).

    video: [F, 3, H, W] float in [-1, 1]; audio: [1, L] or [L] float in [-1, 1] at `audio_rate`.
    Values outside [-1, 1] are clipped. `scale` enlarges the picture by pixel repetition (a 32x32
    clip is hard to see); an odd width or height is made even by repeating the last column or row,
    as yuv420p requires. Audio at a rate players do not take (below 16 kHz or non-standard) is
    resampled to the next standard rate, and stays the same length in seconds.

    Example:
        >>> write_clip("samples/0.mp4", video[0], audio[0])  # [16, 3, 64, 64], [1, 25600]
    """
    frames = _video_to_uint8(video, scale)  # [F, H', W', 3]
    samples = _audio_to_mono(audio)  # [L]
    if fps <= 0 or audio_rate < 1 or crf < 0:
        raise ValueError(
            f"expected fps > 0, audio_rate >= 1, crf >= 0; got {fps}, {audio_rate}, {crf}"
        )
    if audio_rate != int(audio_rate):
        raise ValueError(f"audio_rate must be a whole number of Hz, got {audio_rate}")
    audio_rate = int(audio_rate)  # 16000.0 -> 16000: PyAV takes only an int rate
    out_rate = audio_rate
    if audio_rate not in _PLAYER_RATES:
        out_rate = min((r for r in _PLAYER_RATES if r >= audio_rate), default=_PLAYER_RATES[-1])
        samples = AF.resample(samples[None], audio_rate, out_rate)[0].clamp(-1.0, 1.0)
    path = Path(path)
    options = {"movflags": "+faststart"}  # index first: players start before the end arrives
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4", options=options) as out:
        # Both streams must exist before the first packet is muxed (that writes the header).
        vstream = _video_stream(out, frames.shape[1:3], fps, crf)
        astream = out.add_stream("aac", rate=out_rate, layout="mono")
        _encode_video(out, vstream, frames)
        _encode_audio(out, astream, samples.numpy(), out_rate)
    return path


def _video_to_uint8(video: torch.Tensor, scale: int) -> np.ndarray:
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[1] != 3:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"video must be [F, 3, H, W], got {shape}")
    if video.shape[0] == 0:
        raise ValueError("video has no frames")
    if not torch.isfinite(video).all():
        raise ValueError("video contains NaN or infinite values")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    pixels = ((video.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if scale > 1:
        pixels = pixels.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    h, w = pixels.shape[-2:]
    if h % 2 or w % 2:
        pixels = F.pad(pixels.float(), (0, w % 2, 0, h % 2), mode="replicate").to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def _audio_to_mono(audio: torch.Tensor) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor) or not (
        audio.ndim == 1 or (audio.ndim == 2 and audio.shape[0] == 1)
    ):
        shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
        raise ValueError(f"audio must be [1, L] or [L], got {shape}")
    if audio.shape[-1] == 0:
        raise ValueError("audio has no samples")
    if not torch.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite values")
    return audio.detach().float().cpu().reshape(-1).clamp(-1, 1)


def _video_stream(out, shape: tuple[int, int], fps: float, crf: int):
    codec = "libx264" if "libx264" in av.codecs_available else "h264"
    stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1_000_000))
    stream.height, stream.width = shape
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": str(crf)}
    return stream


def _encode_video(out, stream, frames: np.ndarray) -> None:
    for k, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = k
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _encode_audio(out, stream, samples: np.ndarray, rate: int) -> None:
    for at in range(0, len(samples), _AAC_FRAME):
        chunk = np.ascontiguousarray(samples[None, at : at + _AAC_FRAME], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = at
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
