"""Small media files whose content encodes time, written with PyAV by the tests themselves.

Picture: source frame j is a uniform grey of level `grey(j)` (steps of 8, so codec rounding cannot
turn one frame into its neighbour). Sound, in absolute time t on the file's timeline: a tone whose
frequency `tone_hz(t)` changes every 0.1 s (one output frame at 10 fps), with phase kept continuous,
plus a loud 3 ms click at every instant of `CLICKS`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

STEP = 0.1  # s: the tone changes on this grid
TONE_AMPLITUDE = 0.2
CLICK_AMPLITUDE = 0.8
CLICK_SECONDS = 0.003
CLICK_HZ = 2500.0


def grey(j: int) -> int:
    """Grey level (0..255) of source frame j."""
    return 16 + 8 * (j % 28)


def tone_hz(t: np.ndarray | float) -> np.ndarray:
    """Tone frequency at absolute time t: 300, 450, ..., 1050 Hz, cycling every 0.6 s."""
    return 300.0 + 150.0 * (np.floor(np.asarray(t) / STEP + 1e-9) % 6)


def clicks(seconds: float) -> list[float]:
    """Click instants: 0.05 s into every fourth 0.1 s step (mid-step, away from tone changes)."""
    return [0.05 + 0.4 * n for n in range(int(seconds / 0.4) + 1) if 0.05 + 0.4 * n < seconds]


def signal(rate: int, start: float, seconds: float) -> np.ndarray:
    """[n] float32: the sound of [start, start + seconds) on the absolute timeline."""
    n = round(seconds * rate)
    t = start + np.arange(n) / rate
    phase = 2 * np.pi * np.cumsum(tone_hz(t)) / rate
    x = TONE_AMPLITUDE * np.sin(phase)
    burst = round(CLICK_SECONDS * rate)
    for c in clicks(start + seconds):
        at = round((c - start) * rate)
        if 0 <= at < n:
            k = np.arange(min(burst, n - at))
            x[at : at + len(k)] += CLICK_AMPLITUDE * np.sin(2 * np.pi * CLICK_HZ * k / rate)
    return x.astype(np.float32)


def write_av(
    path: Path,
    *,
    fps: float | Fraction,
    seconds: float,
    audio_rate: int | None = 16000,
    channels: int = 1,
    width: int = 32,
    height: int = 32,
    vcodec: str = "libx264",
    acodec: str = "aac",
    audio_start: float = 0.0,
    faststart: bool = False,
    mark_left: bool = False,
    gop: int | None = None,
    silent: bool = False,
) -> Path:
    """Write a test file: `seconds` of video from t = 0 and, unless `audio_rate` is None, audio of
    [audio_start, seconds) with `channels` identical channels. `mark_left` paints the left quarter
    of every frame white (to tell a flip or a crop); `gop` puts a keyframe every `gop` frames, so
    that seeks land in the middle of the stream; `silent` writes digital silence (zeros) as the
    sound."""
    rate = Fraction(fps).limit_denominator(100000)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream(vcodec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if gop is not None:
            video.codec_context.gop_size = gop
            video.codec_context.max_b_frames = 2
        if vcodec == "libx264":
            video.options = {"qp": "0"}
            if gop is not None:  # lossy, with B-frames: frames decode out of presentation order
                video.options = {"crf": "10"}
        elif vcodec == "mpeg4":
            video.options = {"qscale": "2"}
            video.codec_context.qscale = 2
        elif vcodec == "libvpx-vp9":
            video.options = {"deadline": "realtime", "cpu-used": "8", "lossless": "1"}
        audio = None
        if audio_rate is not None:
            layout = "mono" if channels == 1 else "stereo"
            audio = out.add_stream(acodec, rate=audio_rate, layout=layout)
        for j in range(math.floor(seconds * rate + 1e-9)):
            image = np.full((height, width, 3), grey(j), dtype=np.uint8)
            if gop is not None:  # texture, so the encoder finds B-frames worth their bits
                noise = np.random.default_rng(j).integers(-6, 7, (height, width, 1))
                image = np.clip(image + noise, 0, 255).astype(np.uint8)
            if mark_left:
                image[:, : width // 4] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = j
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            sound = signal(audio_rate, audio_start, seconds - audio_start)
            _write_audio(
                out,
                audio,
                sound * 0 if silent else sound,
                audio_rate,
                channels,
                audio_start,
            )
    return path


def _write_audio(out, stream, x: np.ndarray, rate: int, channels: int, start: float) -> None:
    layout = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
    offset = round(start * rate)
    for at in range(0, len(x), 1024):
        chunk = np.repeat(x[None, at : at + 1024], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk), format="fltp", layout=layout
        )
        frame.sample_rate = rate
        frame.pts = offset + at
        frame.time_base = Fraction(1, rate)
        for converted in resampler.resample(frame):
            out.mux(stream.encode(converted))
    for converted in resampler.resample(None):
        out.mux(stream.encode(converted))
    out.mux(stream.encode(None))


def dominant_hz(x: np.ndarray, rate: float) -> float:
    """The strongest frequency of x (Hann window, 8x zero padding, nearest bin)."""
    n = 8 * 2 ** math.ceil(math.log2(len(x)))
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=n))
    return float(np.argmax(spectrum) * rate / n)


def click_onsets(x: np.ndarray, rate: float) -> list[float]:
    """Seconds at which the clicks of x begin: its 2nd difference (which the smooth tones barely
    move) first passing half its maximum, clicks at least 0.1 s apart."""
    d = np.abs(np.diff(x, n=2, prepend=[x[0], x[0]]))
    loud = np.nonzero(d > 0.5 * d.max())[0]
    onsets: list[int] = []
    for i in loud:
        if not onsets or i - onsets[-1] > 0.1 * rate:
            onsets.append(i)
    return [i / rate for i in onsets]


def damage_packets(
    src: Path, dst: Path, bad: dict[tuple[str, int], str]
) -> dict[tuple[str, int], float]:
    """Copy `src` to `dst` packet by packet (no re-encoding), damaging packet n (-1: the last) of
    the stream of each (kind, n) in `bad`: "garbage" replaces its bytes with as many random ones,
    "truncated" keeps only its first half. Returns each damaged packet's presentation time (s)."""
    with av.open(str(src)) as counting:
        totals: dict[str, int] = {}
        for packet in counting.demux():
            if packet.dts is not None:
                totals[packet.stream.type] = totals.get(packet.stream.type, 0) + 1
    wanted = {(kind, n % totals[kind]): how for (kind, n), how in bad.items()}
    at: dict[tuple[str, int], float] = {}
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in source.streams}
        counts: dict[str, int] = {}
        for packet in source.demux():
            if packet.dts is None:
                continue
            stream = packet.stream
            n = counts.get(stream.type, 0)
            counts[stream.type] = n + 1
            how = wanted.get((stream.type, n))
            if how is not None:
                data = bytes(packet)
                if how == "garbage":
                    data = np.random.default_rng(n).integers(0, 256, len(data), np.uint8).tobytes()
                else:
                    data = data[: len(data) // 2]
                damaged = av.Packet(data)
                damaged.pts, damaged.dts = packet.pts, packet.dts
                damaged.time_base, damaged.duration = packet.time_base, packet.duration
                damaged.is_keyframe = packet.is_keyframe
                key = next(k for k in bad if k[0] == stream.type and k[1] % totals[k[0]] == n)
                at[key] = float(packet.pts * packet.time_base)
                packet = damaged
            packet.stream = streams[stream.index]
            out.mux(packet)
    return at
