"""Decode a time interval of a file by presentation timestamps, so picture and sound stay aligned
whatever the source frame rate and sample rate.

Video: output frame k is the source frame on screen at `times[k]`, i.e. the last frame whose
timestamp is <= times[k]. Audio: exactly the samples of [start, end), mixed to mono and resampled
with torchaudio; decoded frames are laid end to end from the first one's timestamp and re-anchored
only at real gaps, so the coarse timestamps of some containers (1 ms in Matroska and WebM) add no
jitter. After a seek the first frame's coarse timestamp can still place a whole clip up to ~1 ms
off, 1/100 of a frame at 10 fps.

Timestamps are FFmpeg's: where a container has none (AVI with B-frames) FFmpeg's reconstruction,
one frame late, is used as players use it.

Damage is per packet: a packet that cannot be decoded is skipped and the rest of the stream decoded.
A bad audio packet spoils its own samples; a bad video packet spoils every instant from the last
frame shown before it to the next keyframe (the frames that may reference it). A clip that needs a
spoiled instant is a `DamagedClip`; the clips around it are unharmed. A demuxing error ends the
stream where it occurs (a file cut short).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from mmfast.data.probe import MediaError, StreamSpan, error_reason, frame_time, open_input
from mmfast.data.pyav import av
from mmfast.data.resize import FitPlan, fit_frame, to_unit_range

# Float slack when comparing a frame's timestamp with a wanted instant (well below any frame period).
_TIME_EPS = 1e-6
# Audio decoded before the interval, so that the first kept samples do not come from a decoder
# that has just been reset by a seek (AAC needs one frame of overlap, Opus 80 ms of pre-roll).
_AUDIO_PREROLL = 0.25
# Extra audio on each side of the interval, so the resampler's filter sees real signal, not zeros.
_AUDIO_MARGIN = 0.02
# Intervals shorter than this before a wanted time are decoded from the start instead of seeking.
_SEEK_MIN = 1.0


class DamagedClip(MediaError):
    """A clip that needs an instant spoiled by a packet that cannot be decoded; `at` is the
    damage's first instant in seconds."""

    def __init__(self, message: str, at: float):
        super().__init__(message)
        self.at = at


@dataclass
class Damage:
    """Instants of a stream spoiled by an undecodable packet: (start, end) seconds, exclusive on
    the left for video (the last good frame before it is still good) and inclusive for audio."""

    start: float
    end: float
    reason: str

    def spoils(self, t: float) -> bool:
        return self.start < t < self.end


def decoded_frames(container, stream, damage: list[Damage]) -> Iterator[av.frame.Frame]:
    """The frames of `stream`, decoded packet by packet: a packet that fails is skipped and
    recorded in `damage`; a demuxing error ends the stream (what came before it is kept)."""
    video = stream.type == "video"
    shown = -math.inf  # presentation time of the last frame given out
    open_damage: Damage | None = None  # a video damage waiting for its keyframe
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError:
            packet = None  # a damaged tail: flush the decoder and stop
        t = None
        if packet is not None and packet.time_base is not None:
            ts = packet.pts if packet.pts is not None else packet.dts
            t = float(ts * packet.time_base) if ts is not None else None
        if video and open_damage and packet is not None and packet.is_keyframe and t is not None:
            open_damage.end = t
            open_damage = None
        try:
            frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
        except av.FFmpegError as e:
            if packet is None:
                break
            if video:
                if open_damage is None:
                    open_damage = Damage(shown, math.inf, error_reason(e))
                    damage.append(open_damage)
            else:
                at = t if t is not None else shown
                length = float((packet.duration or 0) * packet.time_base) if t is not None else 0
                damage.append(Damage(at, at + max(length, 1e-9), error_reason(e)))
            continue
        for frame in frames:
            ft = frame_time(frame)
            if ft is not None:
                shown = ft + (frame.samples / frame.sample_rate if not video else 0.0)
            yield frame
        if packet is None:
            break


def _spoiled(damage: list[Damage], times: Sequence[float]) -> Damage | None:
    return next((d for d in damage if any(d.spoils(t) for t in times)), None)


def _damaged_clip(path, kind: str, d: Damage, start: float) -> DamagedClip:
    return DamagedClip(
        f"{path}: a damaged {kind} packet near {max(d.start, start):.3f} s spoils the clip "
        f"starting at {start:.3f} s ({d.reason})",
        max(d.start, start),
    )


def decode_video(
    path: str | Path, times: Sequence[float], plan: FitPlan, span: StreamSpan
) -> torch.Tensor:
    """The source frames on screen at `times` (seconds, increasing) -> [len(times), 3, S, S]
    float32 in [-1, 1], fitted by `plan`. `span` is the video stream's span from `probe`."""
    if not times:
        raise ValueError("expected at least one time")
    if times[0] < span.start - _TIME_EPS or times[-1] >= span.end + _TIME_EPS:
        raise MediaError(
            f"{path}: video covers [{span.start:.3f}, {span.end:.3f}) s, "
            f"asked for frames at {times[0]:.3f}..{times[-1]:.3f} s"
        )
    seek_to = times[0] if times[0] - span.start >= _SEEK_MIN else None
    picked = _pick_frames(path, times, plan, span, seek_to)
    if picked is None:
        # The keyframe found by the seek is presented after times[0] (reordered frames): start over.
        picked = _pick_frames(path, times, plan, span, None)
    if picked is None:
        raise MediaError(f"{path}: no video frame at or before {times[0]:.3f} s")
    return to_unit_range(torch.stack(picked))


def decode_video_clips(
    path: str | Path,
    starts: Sequence[float],
    frames: int,
    fps: float,
    plan: FitPlan,
    span: StreamSpan,
) -> Iterator[tuple[int, torch.Tensor | MediaError]]:
    """Clip j = the frames on screen at starts[j] + k / fps, k < `frames`, all clips from one pass
    over the stream (no seeking): yields (j, uint8 [frames, 3, S, S]) in order, or (j, the
    MediaError) for a clip that cannot be had (DamagedClip when a damaged packet spoils it). The
    frames are those `decode_video` picks for the same instants."""
    times = [s + k / fps for s in starts for k in range(frames)]
    damage: list[Damage] = []
    done = 0
    with open_input(path) as container:
        stream = container.streams.best("video")
        clip: list[torch.Tensor] = []
        try:
            for fitted in _on_screen(decoded_frames(container, stream, damage), times, plan, span):
                clip.append(fitted)
                if len(clip) < frames:
                    continue
                wanted = times[done * frames : (done + 1) * frames]
                d = _spoiled(damage, wanted)
                if d is not None:
                    yield done, _damaged_clip(path, "video", d, starts[done])
                else:
                    yield done, torch.stack(clip)
                clip, done = [], done + 1
        except _LateStart:
            pass
    for j in range(done, len(starts)):
        yield (
            j,
            MediaError(
                f"{path}: video has no frame on screen at {starts[j]:.3f} s "
                f"(it covers [{span.start:.3f}, {span.end:.3f}) s)"
            ),
        )


class _LateStart(Exception):
    """The first decoded frame is presented after the first wanted instant."""


def _on_screen(frames, times: Sequence[float], plan: FitPlan, span: StreamSpan):
    """For each of `times` (increasing), the fitted frame on screen then, as uint8 [3, S, S]
    (the last frame whose timestamp is <= the instant; the last frame stays until the stream's
    end). Each frame is fitted once, however many instants it covers, and while its decoder is
    open. Stops early when the stream ends first; _LateStart when it starts after times[0]."""
    shown = None  # the decoded frame on screen so far
    fitted = None  # shown, fitted
    n = 0
    for frame in frames:
        t = frame_time(frame)
        if t is None:
            continue
        while n < len(times) and t > times[n] + _TIME_EPS:
            if shown is None:
                raise _LateStart
            fitted = fit_frame(shown, plan) if fitted is None else fitted
            yield fitted
            n += 1
        if n == len(times):
            return
        shown, fitted = frame, None
    if shown is None:
        raise _LateStart
    fitted = fit_frame(shown, plan) if fitted is None else fitted
    while n < len(times) and times[n] < span.end + _TIME_EPS:
        yield fitted
        n += 1


def _pick_frames(path, times, plan, span, seek_to) -> list[torch.Tensor] | None:
    """Fitted frames on screen at `times`, or None when the first decoded frame comes after
    times[0]."""
    damage: list[Damage] = []
    with open_input(path) as container:
        stream = container.streams.best("video")
        if seek_to is not None:
            container.seek(math.floor(seek_to / stream.time_base), stream=stream, backward=True)
        try:
            out = list(_on_screen(decoded_frames(container, stream, damage), times, plan, span))
        except _LateStart:
            return None
    d = _spoiled(damage, times)
    if d is not None:
        raise _damaged_clip(path, "video", d, times[0])
    if len(out) < len(times):
        raise MediaError(
            f"{path}: video ended after {len(out)} of {len(times)} frames "
            f"(the last wanted at {times[-1]:.3f} s)"
        )
    return out


def decode_audio(
    path: str | Path,
    start: float,
    end: float,
    rate: int,
    span: StreamSpan,
    channel: int | None = None,
) -> torch.Tensor:
    """Audio of [start, end) seconds -> [1, round((end - start) * rate)] float32 mono (channels
    averaged, or only `channel`), resampled to `rate`. `span` is the audio stream's span from
    `probe`; an interval outside it is a MediaError naming both."""
    length = round((end - start) * rate)
    src_rate = round(span.rate)
    if start < span.start - 1 / src_rate or end > span.end + 1 / src_rate:
        raise MediaError(
            f"{path}: audio covers [{span.start:.4f}, {span.end:.4f}) s "
            f"({span.duration:.4f} s), asked for [{start:.4f}, {end:.4f}) s ({end - start:.4f} s)"
        )
    # Source sample indices: the interval plus margins, within the stream.
    lo = math.floor(max(start - _AUDIO_MARGIN, span.start) * src_rate)
    hi = math.ceil(min(end + _AUDIO_MARGIN, span.end) * src_rate)
    need_lo, need_hi = math.floor(start * src_rate), math.floor(end * src_rate)
    seek_to = start - _AUDIO_PREROLL if start - span.start >= _SEEK_MIN else None
    buffer, covered, damage = _gather(path, lo, hi, src_rate, seek_to, channel)
    if seek_to is not None and not covered[: need_lo - lo + 1].any():
        buffer, covered, damage = _gather(path, lo, hi, src_rate, None, channel)
    core = covered[need_lo - lo : need_hi - lo]
    if core.size == 0 or not core.all():
        missing = int(core.size - core.sum())
        hit = next((d for d in damage if d.start < end and d.end > start), None)
        if hit is not None:
            raise _damaged_clip(path, "audio", hit, start)
        raise MediaError(
            f"{path}: {missing} of {need_hi - need_lo} audio samples of "
            f"[{start:.4f}, {end:.4f}) s could not be decoded"
        )
    signal = torch.from_numpy(buffer)[None]  # [1, hi - lo] at src_rate, from time lo / src_rate
    if src_rate != rate:
        signal = AF.resample(signal, src_rate, rate)
    # Output sample j is at lo / src_rate + j / rate: the clip starts at the nearest one.
    first = round((start - lo / src_rate) * rate)
    clip = signal[:, first : first + length]
    if clip.shape[1] < length:
        # At most the rounding of the stream's last sample; anything more was caught above.
        clip = torch.cat([clip, clip[:, -1:].expand(1, length - clip.shape[1])], dim=1)
    return clip.clamp(-1.0, 1.0).contiguous()


def _gather(
    path, lo: int, hi: int, src_rate: int, seek_to, channel: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[Damage]]:
    """Source samples [lo, hi) -> (float32 mono samples, bool mask of those decoded, the damage
    met on the way)."""
    damage: list[Damage] = []
    buffer = np.zeros(hi - lo, dtype=np.float32)
    covered = np.zeros(hi - lo, dtype=bool)
    with open_input(path) as container:
        stream = container.streams.best("audio")
        if seek_to is not None:
            container.seek(math.floor(seek_to / stream.time_base), stream=stream, backward=True)
        tolerance = src_rate * max(2 * float(stream.time_base), 0.002)
        frames = decoded_frames(container, stream, damage)
        for pos, samples in _laid_out(frames, tolerance, channel):
            a, b = max(pos, lo), min(pos + len(samples), hi)
            if a < b:
                buffer[a - lo : b - lo] = samples[a - pos : b - pos]
                covered[a - lo : b - lo] = True
            if pos >= hi:
                break
    return buffer, covered, damage


def audio_peak(path: str | Path) -> float:
    """The largest |sample| of the best audio stream over all its channels, on the [-1, 1] scale
    (damaged packets skipped): 0.0 for digital silence."""
    peak = 0.0
    with open_input(path) as container:
        stream = container.streams.best("audio")
        if stream is None:
            raise MediaError(f"{path}: no audio stream")
        for frame in decoded_frames(container, stream, []):
            data = _channels(frame)
            if data.size:
                peak = max(peak, float(np.abs(data).max()))
    return peak


def _laid_out(
    frames: Iterator[av.AudioFrame], tolerance: float, channel: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample index, mono samples) of consecutive frames, laid end to end."""
    pos: int | None = None
    for frame in frames:
        samples = mono_samples(frame, channel)
        t = frame_time(frame)
        if t is not None:
            at = t * frame.sample_rate
            if pos is None or abs(at - pos) > tolerance:
                pos = round(at)
        if pos is None:
            continue
        yield pos, samples
        pos += len(samples)


def mono_samples(frame: av.AudioFrame, channel: int | None = None) -> np.ndarray:
    """A decoded audio frame in any sample format -> [samples] float32 in [-1, 1], channels
    averaged (or only `channel`, the last one when the frame has fewer)."""
    data = _channels(frame)
    if channel is not None:
        return data[min(channel, data.shape[0] - 1)].astype(np.float32)
    return data.astype(np.float32).mean(axis=0)


def _channels(frame: av.AudioFrame) -> np.ndarray:
    """[channels, samples] on the [-1, 1] scale (float, any width)."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    data = data[:channels, : frame.samples]
    kind = data.dtype
    if kind == np.uint8:
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(kind, np.integer):
        data = data.astype(np.float32) / float(-np.iinfo(kind).min)
    return data
