"""The clip index of a folder of videos: which files are usable and where their clips start.

Built once by probing every file (`probe`), then cached as JSON at a path the caller chooses (the
trainer's run directory, never the data folder). A cached entry is reused while its file keeps the
same size and modification time; changed and new files are probed again, vanished ones dropped.
Probing also reads the whole sound track once for its peak, so that `SourceRules` can skip digital
silence; the rules (silence, --min-fps, --min-size) are applied to the cached facts, so changing
them never probes again.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from mmfast.data.decode import audio_peak
from mmfast.data.probe import MediaError, probe
from mmfast.files import atomic_path

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi")
_FORMAT = 2
# Digital silence: no sample of any channel reaches one step of 16-bit sound (2^-15, -90 dBFS).
# Encoders of silence leave exact zeros or dither far below it; any recorded sound is far above.
SILENCE_PEAK = 2.0**-15


@dataclass(frozen=True)
class FileEntry:
    """One file: its clips start at `start + i * clip_seconds` for i < `num_clips`; the spans are
    those of `probe` (seconds and rates), kept so that clips decode without probing again."""

    path: str  # relative to the root, POSIX separators
    size: int
    mtime_ns: int
    num_clips: int = 0
    start: float = 0.0
    video: tuple[float, float, float, int, int] | None = None  # start, end, fps, width, height
    audio: tuple[float, float, float] | None = None  # start, end, sample rate
    skipped: str | None = None  # why the file has no clips
    audio_peak: float | None = None  # largest |sample| of the sound track, [-1, 1] scale


@dataclass(frozen=True)
class SourceRules:
    """Which usable files a dataset takes: digital silence is skipped unless `keep_silent`;
    `min_fps` and `min_size` (the shorter side, in pixels) filter sources as the paper did for
    its AudioSet model ("filtered by frame rate and video size")."""

    keep_silent: bool = False
    min_fps: float = 0.0
    min_size: int = 0

    def apply(self, entry: FileEntry) -> FileEntry:
        """`entry`, or a skipped copy saying which rule it fails."""
        reason = self.reason(entry)
        if reason is None:
            return entry
        return dataclasses.replace(entry, num_clips=0, skipped=reason)

    def reason(self, entry: FileEntry) -> str | None:
        if entry.skipped is not None or entry.video is None:
            return None
        fps, width, height = entry.video[2], entry.video[3], entry.video[4]
        if fps < self.min_fps:
            return f"frame rate {fps:.3g} fps is below --min-fps {self.min_fps:g}"
        if min(width, height) < self.min_size:
            return f"{width}x{height}: the shorter side is below --min-size {self.min_size}"
        if (
            not self.keep_silent
            and entry.audio_peak is not None
            and entry.audio_peak < SILENCE_PEAK
        ):
            return (
                f"the sound track is digital silence (peak {entry.audio_peak:.2g} < 2^-15); "
                "keep it with --keep-silent"
            )
        return None


@dataclass
class ClipIndex:
    root: Path
    clip_seconds: float
    files: list[FileEntry]
    probed: int = 0  # files probed by this build (0 when the cache served every file)


def scan(root: Path) -> list[Path]:
    """Video files under `root`, recursively, sorted by relative path (stable across machines)."""
    found = [p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def build_index(
    root: Path, clip_seconds: float, index_path: Path | None, rules: SourceRules | None = None
) -> ClipIndex:
    """Index the videos under `root` into clips of `clip_seconds`, reusing `index_path` if valid;
    files that fail `rules` (default: skip digital silence) are marked skipped."""
    rules = rules or SourceRules()
    cached = _load(index_path, root, clip_seconds) if index_path is not None else {}
    files, probed = [], 0
    for path in scan(root):
        rel = path.relative_to(root).as_posix()
        stat = path.stat()
        entry = cached.get(rel)
        if entry is None or entry.size != stat.st_size or entry.mtime_ns != stat.st_mtime_ns:
            entry = probe_entry(path, rel, stat.st_size, stat.st_mtime_ns, clip_seconds)
            probed += 1
        files.append(entry)
    if index_path is not None and (probed or len(files) != len(cached)):
        _save(index_path, root, clip_seconds, files)
    return ClipIndex(root, clip_seconds, [rules.apply(f) for f in files], probed)


def probe_entry(path: Path, rel: str, size: int, mtime_ns: int, clip_seconds: float) -> FileEntry:
    """The index entry of one file (`rel`: its path relative to the root), rules not applied."""
    try:
        info = probe(path)
    except MediaError as e:
        return FileEntry(rel, size, mtime_ns, skipped=str(e).removeprefix(f"{path}: "))
    except Exception as e:  # one odd file must not stop the indexing of a folder
        return FileEntry(rel, size, mtime_ns, skipped=f"unexpected {type(e).__name__}: {e}")
    if info.video is None:
        return FileEntry(rel, size, mtime_ns, skipped="no video stream")
    if info.audio is None:
        return FileEntry(rel, size, mtime_ns, skipped="no audio stream")
    start, end = info.common_span()
    # The slack forgives float rounding of a file that is an exact multiple of the clip length.
    num_clips = max(0, math.floor((end - start) / clip_seconds + 1e-6))
    v, a = info.video, info.audio
    try:
        peak = audio_peak(path)
    except MediaError as e:
        return FileEntry(rel, size, mtime_ns, skipped=str(e).removeprefix(f"{path}: "))
    entry = FileEntry(
        rel,
        size,
        mtime_ns,
        num_clips,
        start,
        (v.start, v.end, v.rate, v.width, v.height),
        (a.start, a.end, a.rate),
        audio_peak=peak,
    )
    if num_clips == 0:
        return FileEntry(
            rel,
            size,
            mtime_ns,
            skipped=f"shorter than one clip: {end - start:.3f} s of video with audio, "
            f"a clip is {clip_seconds:.3f} s",
        )
    return entry


def _load(index_path: Path, root: Path, clip_seconds: float) -> dict[str, FileEntry]:
    """Cached entries by relative path; {} when the cache is missing, unreadable or for other
    settings (a corrupt cache is rebuilt, never trusted)."""
    try:
        data = json.loads(Path(index_path).read_text(encoding="utf-8"))
        if (
            data.get("format") != _FORMAT
            or data.get("root") != str(root.resolve())
            or data.get("clip_seconds") != clip_seconds
        ):
            return {}
        entries = {}
        for raw in data["files"]:
            raw["video"] = tuple(raw["video"]) if raw.get("video") else None
            raw["audio"] = tuple(raw["audio"]) if raw.get("audio") else None
            entries[raw["path"]] = FileEntry(**raw)
        return entries
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save(index_path: Path, root: Path, clip_seconds: float, files: list[FileEntry]) -> None:
    data = {
        "format": _FORMAT,
        "root": str(root.resolve()),
        "clip_seconds": clip_seconds,
        "files": [dataclasses.asdict(f) for f in files],
    }
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
