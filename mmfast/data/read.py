"""One clip from one file, for conditioning inputs (`mmfast sample --condition-audio/-video FILE`)."""

from __future__ import annotations

from pathlib import Path

import torch

from mmfast.data.decode import decode_audio, decode_video
from mmfast.data.probe import MediaError, MediaInfo, probe
from mmfast.data.resize import Resize, check_resize, plan_fit


def read_media(
    path: str | Path,
    *,
    frames: int = 16,
    fps: float = 10.0,
    size: int = 64,
    audio_rate: int = 16000,
    start: float = 0.0,
    resize: Resize = "letterbox",
    streams: tuple[str, ...] = ("video", "audio"),
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The clip [start, start + frames / fps) seconds of `path` (a video file or a sound file
    such as .wav), decoded by timestamps as in `VideoFolderDataset`.

    Only the `streams` asked for are decoded, and only they must cover the clip (a video's short
    sound track does not matter when only its picture conditions). `start` counts from the first
    instant where every one of them has content. Returns (video, audio), each None when not asked
    for or absent from the file:
      video: [frames, 3, size, size] float32 in [-1, 1], frame k on screen at start + k / fps;
      audio: [1, round(frames / fps * audio_rate)] float32 in [-1, 1], mono.
    A stream shorter than the clip is a MediaError naming both lengths: nothing is padded.

    Example:
        >>> _, audio = read_media("drums.wav")  # audio: [1, 25600]
        >>> video, _ = read_media("clip.mp4", start=3.2, streams=("video",))
    """
    check_resize(resize)
    if frames < 1 or fps <= 0 or size < 1 or audio_rate < 1 or start < 0:
        raise ValueError(
            f"expected frames >= 1, fps > 0, size >= 1, audio_rate >= 1, start >= 0; got "
            f"frames={frames}, fps={fps}, size={size}, audio_rate={audio_rate}, start={start}"
        )
    if not streams or not set(streams) <= {"video", "audio"}:
        raise ValueError(f"streams must name 'video' and/or 'audio', got {streams!r}")
    info = probe(path)
    info = MediaInfo(
        video=info.video if "video" in streams else None,
        audio=info.audio if "audio" in streams else None,
    )
    if info.video is None and info.audio is None:
        raise MediaError(f"{path}: has no {' or '.join(streams)} stream")
    origin, end = info.common_span()
    seconds = frames / fps
    t0 = origin + start
    if t0 + seconds > end + 1e-6:
        have = max(0.0, end - origin)
        what = (
            "video with audio"
            if info.video and info.audio
            else next(k for k in ("video", "audio") if getattr(info, k) is not None)
        )
        raise MediaError(
            f"{path}: the clip needs {seconds:.3f} s ({frames} frames at {fps:g} fps, "
            f"{round(seconds * audio_rate)} samples at {audio_rate} Hz) from {start:.3f} s, "
            f"but the file has {have:.3f} s of {what} ({round(have * audio_rate)} samples)"
        )
    video = audio = None
    if info.video is not None:
        v = info.video
        plan = plan_fit(v.width, v.height, size, resize)
        video = decode_video(path, [t0 + k / fps for k in range(frames)], plan, v)
    if info.audio is not None:
        audio = decode_audio(path, t0, t0 + seconds, audio_rate, info.audio)
    return video, audio
