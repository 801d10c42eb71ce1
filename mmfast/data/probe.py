"""What a media file holds: each stream's first and last presented instant, read with PyAV.

Ends come from demuxing every packet (cheap: nothing is decoded), so they are exact even where the
header's durations are missing (webm) or wrong (a file cut short after its header). Starts come from
the first decoded frame, which also proves that each stream can be decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mmfast.data.pyav import av


class MediaError(ValueError):
    """A media file cannot be opened, has no usable stream, or is shorter than asked for."""


class MediaWarning(UserWarning):
    """A media file was skipped (at indexing) or stopped decoding (during a run), a damaged clip
    was dropped, or a note on how the videos are read (decoded while training)."""


@dataclass(frozen=True)
class StreamSpan:
    """One stream on the file's timeline, in seconds: content from `start` (inclusive) to `end`
    (exclusive); `rate` is frames per second for video and samples per second for audio."""

    start: float
    end: float
    rate: float
    width: int = 0
    height: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class MediaInfo:
    """The best video and audio stream of a file (None where the file has none)."""

    video: StreamSpan | None
    audio: StreamSpan | None

    def common_span(self) -> tuple[float, float]:
        """(start, end) in seconds of the interval covered by every stream the file has."""
        spans = [s for s in (self.video, self.audio) if s is not None]
        if not spans:
            raise MediaError("no video or audio stream")
        return max(s.start for s in spans), min(s.end for s in spans)


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open `path` for reading; PyAV's errors become MediaError naming the file."""
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise MediaError(f"{path}: cannot open as media ({error_reason(e)})") from e


def frame_time(frame: av.VideoFrame | av.AudioFrame) -> float | None:
    """The instant a decoded frame is presented, in seconds (None when it carries no timestamp)."""
    ts = frame.pts if frame.pts is not None else frame.dts
    if ts is None or frame.time_base is None:
        return None
    return float(ts * frame.time_base)


def probe(path: str | Path) -> MediaInfo:
    """Spans of the best video and audio stream of `path` (attached cover pictures are not video).

    Raises MediaError when the file cannot be opened, has neither stream, or a stream it has cannot
    be decoded.
    """
    with open_input(path) as container:
        video = container.streams.best("video")
        audio = container.streams.best("audio")
        if video is None and audio is None:
            raise MediaError(f"{path}: no video or audio stream")
        streams = [s for s in (video, audio) if s is not None]
        ends = _packet_ends(container, streams)
        # PyAV streams must not outlive their container: keep plain facts only.
        facts = {s.type: _StreamFacts.of(s) for s in streams}
    return MediaInfo(
        video=_span(path, facts["video"], ends) if "video" in facts else None,
        audio=_span(path, facts["audio"], ends) if "audio" in facts else None,
    )


@dataclass(frozen=True)
class _StreamFacts:
    index: int
    kind: str
    header_start: float | None
    frame_rate: float

    @classmethod
    def of(cls, stream) -> _StreamFacts:
        start = stream.start_time
        rate = stream.average_rate or stream.guessed_rate if stream.type == "video" else None
        return cls(
            stream.index,
            stream.type,
            float(start * stream.time_base) if start is not None else None,
            float(rate) if rate else 0.0,
        )


def _packet_ends(container, streams) -> dict[int, float]:
    """The end (pts + duration, seconds) of the last-presented packet of each stream."""
    ends: dict[int, float] = {}
    try:
        for packet in container.demux(*streams):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None or packet.size == 0:
                continue
            stream = packet.stream
            duration = packet.duration or 0
            if duration <= 0 and stream.type == "video":
                rate = stream.average_rate or stream.guessed_rate
                duration = 1 / (float(rate) * float(stream.time_base)) if rate else 0
            end = float((ts + duration) * stream.time_base)
            ends[stream.index] = max(ends.get(stream.index, -math.inf), end)
    except av.FFmpegError:
        # A damaged tail: what was demuxed before it is what the file holds.
        pass
    return ends


def _span(path, facts: _StreamFacts, ends: dict[int, float]) -> StreamSpan:
    if facts.index not in ends:
        raise MediaError(f"{path}: the {facts.kind} stream has no packets")
    start, rate, width, height = _first_frame(path, facts.index, facts.kind)
    if start is None:
        start = facts.header_start or 0.0
    if facts.kind == "video":
        rate = facts.frame_rate
    # A last packet without a duration: the stream cannot end before it starts.
    return StreamSpan(start, max(ends[facts.index], start), rate, width, height)


def _first_frame(path, index: int, kind: str) -> tuple[float | None, float, int, int]:
    """(time, sample rate, width, height) of the stream's first decoded frame. Read while the
    container is open: a frame must not outlive its decoder."""
    failed = None  # packets that cannot be decoded are skipped (see mmfast.data.decode)
    with open_input(path) as container:
        stream = container.streams[index]
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets, None)
                frames = packet.decode() if packet is not None else []
            except av.FFmpegError as e:
                failed = e
                continue
            for frame in frames:
                if kind == "video":
                    return frame_time(frame), 0.0, frame.width, frame.height
                return frame_time(frame), float(frame.sample_rate), 0, 0
            if packet is None:
                break
    if failed is not None:
        raise MediaError(f"{path}: the {kind} stream cannot be decoded ({error_reason(failed)})")
    raise MediaError(f"{path}: the {kind} stream decodes to no frame")


def error_reason(error: Exception) -> str:
    """PyAV's message without the file name it repeats."""
    return getattr(error, "strerror", None) or str(error)
