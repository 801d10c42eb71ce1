"""The clip index of a folder of videos: which files are usable and where their clips start.

Built once by probing every file (`probe`), then cached as JSON at a path the caller chooses (the
trainer's run directory, never the data folder). A cached entry is reused while its file keeps the
same size and modification time; changed and new files are probed again, vanished ones dropped.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from mmfast.data.probe import MediaError, probe
from mmfast.files import atomic_path

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi")
_FORMAT = 1


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


def build_index(root: Path, clip_seconds: float, index_path: Path | None) -> ClipIndex:
    """Index the videos under `root` into clips of `clip_seconds`, reusing `index_path` if valid."""
    cached = _load(index_path, root, clip_seconds) if index_path is not None else {}
    files, probed = [], 0
    for path in scan(root):
        rel = path.relative_to(root).as_posix()
        stat = path.stat()
        entry = cached.get(rel)
        if entry is None or entry.size != stat.st_size or entry.mtime_ns != stat.st_mtime_ns:
            entry = _probe_entry(path, rel, stat.st_size, stat.st_mtime_ns, clip_seconds)
            probed += 1
        files.append(entry)
    if index_path is not None and (probed or len(files) != len(cached)):
        _save(index_path, root, clip_seconds, files)
    return ClipIndex(root, clip_seconds, files, probed)


def _probe_entry(path: Path, rel: str, size: int, mtime_ns: int, clip_seconds: float) -> FileEntry:
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
    entry = FileEntry(
        rel,
        size,
        mtime_ns,
        num_clips,
        start,
        (v.start, v.end, v.rate, v.width, v.height),
        (a.start, a.end, a.rate),
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
