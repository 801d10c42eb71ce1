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
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio.functional as AF

from mmfast.data.probe import MediaError, StreamSpan, error_reason, frame_time, open_input
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


def _pick_frames(path, times, plan, span, seek_to) -> list[torch.Tensor] | None:
    """Fitted frames on screen at `times`, or None when the first decoded frame comes after
    times[0]. Frames are fitted while the container is open: a frame must not outlive its decoder."""
    out: list[torch.Tensor] = []
    with open_input(path) as container:
        stream = container.streams.best("video")
        if seek_to is not None:
            container.seek(math.floor(seek_to / stream.time_base), stream=stream, backward=True)
        shown = None  # the decoded frame on screen so far
        fitted = None  # shown, fitted (once, however many instants it covers)
        try:
            for frame in container.decode(stream):
                t = frame_time(frame)
                if t is None:
                    continue
                while len(out) < len(times) and t > times[len(out)] + _TIME_EPS:
                    if shown is None:
                        return None
                    fitted = fit_frame(shown, plan) if fitted is None else fitted
                    out.append(fitted)
                if len(out) == len(times):
                    return out
                shown, fitted = frame, None
        except av.FFmpegError as e:
            at = times[min(len(out), len(times) - 1)]
            raise MediaError(
                f"{path}: video decoding failed near {at:.3f} s ({error_reason(e)})"
            ) from e
        if shown is None:
            return None
        # End of stream: the last frame stays on screen until the stream's end.
        fitted = fit_frame(shown, plan) if fitted is None else fitted
        while len(out) < len(times) and times[len(out)] < span.end + _TIME_EPS:
            out.append(fitted)
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
    buffer, covered = _gather(path, lo, hi, src_rate, seek_to, channel)
    if seek_to is not None and not covered[: need_lo - lo + 1].any():
        buffer, covered = _gather(path, lo, hi, src_rate, None, channel)
    core = covered[need_lo - lo : need_hi - lo]
    if core.size == 0 or not core.all():
        missing = int(core.size - core.sum())
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
) -> tuple[np.ndarray, np.ndarray]:
    """Source samples [lo, hi) -> (float32 mono samples, bool mask of those decoded)."""
    buffer = np.zeros(hi - lo, dtype=np.float32)
    covered = np.zeros(hi - lo, dtype=bool)
    with open_input(path) as container:
        stream = container.streams.best("audio")
        if seek_to is not None:
            container.seek(math.floor(seek_to / stream.time_base), stream=stream, backward=True)
        tolerance = src_rate * max(2 * float(stream.time_base), 0.002)
        try:
            for pos, samples in _laid_out(container.decode(stream), tolerance, channel):
                a, b = max(pos, lo), min(pos + len(samples), hi)
                if a < b:
                    buffer[a - lo : b - lo] = samples[a - pos : b - pos]
                    covered[a - lo : b - lo] = True
                if pos >= hi:
                    break
        except av.FFmpegError as e:
            raise MediaError(f"{path}: audio decoding failed ({error_reason(e)})") from e
    return buffer, covered


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
    if channel is not None:
        return data[min(channel, channels - 1)].astype(np.float32)
    return data.astype(np.float32).mean(axis=0)
