"""Media files shaped as users have them, written with PyAV (and the wave module) by the tests, and
the decoding of what a command wrote."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors import safe_open

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def _frame(j: int, width: int, height: int) -> np.ndarray:
    """A ball-like bright square moving over a colour gradient: frame j."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 0 * x + 90], -1)
    cx, cy = (4 + 3 * j) % width, (2 + 2 * j) % height
    image[max(cy - 3, 0) : cy + 3, max(cx - 3, 0) : cx + 3] = 255
    return image.astype(np.uint8)


def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    """[n] float32: a tone with a click every 0.4 s."""
    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * hz * t)
    x[(t % 0.4) < 0.003] += 0.5
    return x.astype(np.float32)


def write_video(
    path: Path,
    *,
    seconds: float,
    fps: float = 30,
    size: tuple[int, int] = (48, 36),
    audio_rate: int | None = 44100,
    channels: int = 2,
    vcodec: str = "libx264",
    acodec: str = "aac",
) -> Path:
    """Write `seconds` of video (and, unless audio_rate is None, sound) to `path`; the container
    follows the suffix (.mp4 .MP4 .mkv .webm .avi)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    fmt = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}[path.suffix.lower()]
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream(vcodec, rate=rate)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        if vcodec == "libvpx-vp9":
            video.options = {"deadline": "realtime", "cpu-used": "8"}
        audio = None
        if audio_rate is not None:
            audio = out.add_stream(acodec, rate=audio_rate, layout=LAYOUTS[channels])
        for j in range(math.floor(seconds * rate + 1e-9)):
            frame = av.VideoFrame.from_ndarray(_frame(j, *size), format="rgb24")
            frame.pts = j
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            _write_audio(out, audio, tone(audio_rate, seconds), audio_rate, channels)
    return path


def _write_audio(out, stream, x: np.ndarray, rate: int, channels: int) -> None:
    layout = LAYOUTS[channels]
    resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
    for at in range(0, len(x), 1024):
        chunk = np.repeat(x[None, at : at + 1024], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk), format="fltp", layout=layout
        )
        frame.sample_rate = rate
        frame.pts = at
        frame.time_base = Fraction(1, rate)
        for converted in resampler.resample(frame):
            out.mux(stream.encode(converted))
    for converted in resampler.resample(None):
        out.mux(stream.encode(converted))
    out.mux(stream.encode(None))


def write_wav(path: Path, *, seconds: float, rate: int = 22050, channels: int = 1) -> Path:
    """A 16-bit PCM .wav file of `seconds` of tone."""
    x = np.repeat(tone(rate, seconds, 330.0)[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((x * 32767).astype("<i2").tobytes())
    return path


def user_folder(root: Path) -> dict[str, str]:
    """A data folder as users have them; returns file -> what the dataset must make of it."""
    write_video(root / "2019/beach/clip_a.mp4", seconds=2.0, fps=30, audio_rate=44100, channels=2)
    write_video(
        root / "2019/beach/night/CLIP_B.MP4", seconds=3.4, fps=25, audio_rate=48000, channels=1
    )
    write_video(
        root / "2020/forest.mkv",
        seconds=2.0,
        fps=24000 / 1001,
        size=(40, 40),
        audio_rate=22050,
        channels=6,
    )
    write_video(
        root / "2020/rain.webm",
        seconds=1.8,
        fps=24,
        size=(32, 48),
        audio_rate=48000,
        channels=2,
        vcodec="libvpx-vp9",
        acodec="libopus",
    )
    write_video(
        root / "2020/old.AVI",
        seconds=1.7,
        fps=30,
        audio_rate=32000,
        channels=1,
        vcodec="mpeg4",
        acodec="mp3",
    )
    write_video(root / "short.mp4", seconds=0.9, fps=30)
    write_video(root / "silent.mp4", seconds=2.0, fps=30, audio_rate=None)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (root / "notes.txt").write_text("shot on a phone\n")
    (root / "2019/cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return {
        "2019/beach/clip_a.mp4": "1 clip",
        "2019/beach/night/CLIP_B.MP4": "2 clips",
        "2020/forest.mkv": "1 clip",
        "2020/rain.webm": "1 clip",
        "2020/old.AVI": "1 clip",
        "short.mp4": "no clip (0.9 s)",
        "silent.mp4": "skipped: no audio",
        "broken.mp4": "skipped: cannot be opened",
    }


@dataclass
class Decoded:
    video_frames: int
    width: int
    height: int
    fps: float
    audio_rate: int
    audio_channels: int
    audio_seconds: float


def decode(path: Path) -> Decoded:
    """Decode every frame of both streams of a written clip."""
    with av.open(str(path)) as f:
        assert len(f.streams.video) == 1 and len(f.streams.audio) == 1, f.streams
        vs = f.streams.video[0]
        frames = list(f.decode(video=0))
        fps = float(vs.average_rate or vs.guessed_rate)
    with av.open(str(path)) as f:
        a = f.streams.audio[0]
        samples = sum(fr.samples for fr in f.decode(audio=0))
        rate, channels = a.rate, a.codec_context.channels
    return Decoded(
        len(frames), frames[0].width, frames[0].height, fps, rate, channels, samples / rate
    )


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > 1000, f"{path} is nearly empty"


def log_steps(run: Path) -> list[dict]:
    """The records of a run's log.jsonl."""
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def checkpoint_step(checkpoint: Path) -> int:
    """The step a training checkpoint resumes at."""
    with safe_open(str(checkpoint), framework="pt") as f:
        return int(f.metadata()["step"])


def check_clips(
    out: Path, num: int, *, size: int = 32, seconds: float = 1.6, sr: bool = False
) -> None:
    """`num` mp4 clips (16 frames of size x size at 10 fps, 1.6 s of AAC audio at a player rate)
    and their PNG previews, and nothing half-written; with `sr`, each also has its upsampled
    sample_NNN_sr.mp4 (checked by the caller)."""
    names = sorted(p.name for p in out.glob("*.mp4"))
    expected = [f"sample_{i:03d}.mp4" for i in range(num)]
    expected += [f"sample_{i:03d}_sr.mp4" for i in range(num)] if sr else []
    assert names == sorted(expected)
    for mp4 in (out / name for name in expected if not name.endswith("_sr.mp4")):
        d = decode(mp4)
        assert (d.video_frames, d.width, d.height) == (16, size, size), d
        assert d.fps == pytest.approx(10.0)
        assert d.audio_rate == 16000 and d.audio_channels == 1, d
        assert abs(d.audio_seconds - seconds) <= 1024 / 16000, d  # one AAC frame of padding
        check_png(mp4.with_suffix(".png"))
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"


def mmfast(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None):
    """`python -m mmfast ARGS` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mmfast", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
