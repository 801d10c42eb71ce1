"""The clips of a folder that an evaluation measures, picked as its protocol says."""

from __future__ import annotations

import hashlib
import json
import math
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmfast.data.clip_index import scan
from mmfast.data.decode import decode_audio, decode_video
from mmfast.data.probe import MediaError, MediaInfo, MediaWarning, probe
from mmfast.data.resize import plan_fit
from mmfast.eval.protocol import Protocol


@dataclass
class ClipPick:
    """Which clips of `folder` are measured: `windows` (file index, first frame) in order, out of
    `available`; `repeated` when the folder had fewer and the protocol repeats them. `spare`
    windows, in pick order, stand in for those of a file that fails to decode."""

    folder: Path
    files: list[Path]
    infos: list[MediaInfo]
    windows: list[tuple[int, int]]
    available: int
    spare: list[tuple[int, int]] = field(default_factory=list)
    repeated: bool = False
    skipped: dict[str, str] = field(default_factory=dict)


def folder_digest(folder: str | Path) -> str:
    """sha256 of the folder's video files' relative paths, sizes and modification times."""
    root = Path(folder)
    rows = []
    for path in scan(root):
        stat = path.stat()
        rows.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def frame_size(folder: str | Path) -> int:
    """The frame size of a folder of square clips (its first video file's larger side)."""
    files = scan(Path(folder))
    if not files:
        raise ValueError(f"no video files under {folder}")
    info = probe(files[0])
    if info.video is None:
        raise MediaError(f"{files[0]}: has no video stream")
    return max(info.video.width, info.video.height)


def _span(info: MediaInfo, protocol: Protocol) -> tuple[float, float]:
    """Where windows may lie: where both streams have content, or (the release, which pads
    short sound with zeros) the whole picture."""
    if protocol.repeat_short:
        return info.video.start, info.video.end
    return info.common_span()


def _windows_of(info: MediaInfo, protocol: Protocol) -> int:
    start, end = _span(info, protocol)
    frames_in_file = math.floor((end - start) * protocol.fps + 1e-6)
    if frames_in_file < protocol.frames:
        return 0
    return (frames_in_file - protocol.frames) // protocol.stride + 1


def pick_clips(folder: str | Path, num: int, protocol: Protocol, seed: int) -> ClipPick:
    """`num` windows of `protocol.frames` frames from the video files under `folder`.

    Seeded: a permutation of all windows from `seed`; fewer than `num` windows is a ValueError.
    Unseeded (the release): Python's unseeded shuffle, repeated in order when short."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    files, infos, counts, skipped = [], [], [], {}
    for path in scan(root):
        try:
            info = probe(path)
            if info.video is None or info.audio is None:
                raise MediaError("needs a video and an audio stream")
            n = _windows_of(info, protocol)
        except (MediaError, OSError) as err:
            skipped[str(path)] = " ".join(str(err).split())
            continue
        if n == 0:
            skipped[str(path)] = f"shorter than {protocol.frames / protocol.fps:g} s"
            continue
        files.append(path)
        infos.append(info)
        counts.append(n)
    if skipped:
        shown = "; ".join(f"{Path(k).name}: {v}" for k, v in list(skipped.items())[:3])
        warnings.warn(f"{root}: skipped {len(skipped)} files ({shown})", MediaWarning, stacklevel=2)
    windows = [(i, k * protocol.stride) for i, n in enumerate(counts) for k in range(n)]
    if not windows:
        raise ValueError(f"{root}: no clip of {protocol.frames / protocol.fps:g} s with sound")
    available = len(windows)
    if protocol.selection == "seeded":
        order = torch.randperm(available, generator=torch.Generator().manual_seed(seed)).tolist()
        windows = [windows[i] for i in order]
    else:
        random.shuffle(windows)
    repeated = False
    if available < num:
        if not protocol.repeat_short:
            raise ValueError(
                f"{root}: {available} clips of {protocol.frames} frames at {protocol.fps:g} fps, "
                f"fewer than --num {num}; pass --num {available} or add clips"
            )
        windows = (windows * math.ceil(num / available))[:num]
        repeated = True
    return ClipPick(root, files, infos, windows[:num], available, windows[num:], repeated, skipped)


def read_clips(
    pick: ClipPick, protocol: Protocol, size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The picked clips in order: video [F, 3, size, size] float32 in [-1, 1] (letterboxed),
    audio [1, L] float32 at `protocol.audio_rate`, L = protocol.audio_length (zero-padded where
    the file's sound ends early, as the release did)."""
    channel = None if protocol.audio_channel == "mean" else int(protocol.audio_channel)
    queue, spare, bad = list(pick.windows), list(pick.spare), set()
    while queue:
        file, first = queue.pop(0)
        if file in bad:
            continue
        try:
            yield _read_window(pick, file, first, protocol, size, channel)
        except MediaError as err:
            bad.add(file)
            pick.skipped[str(pick.files[file])] = " ".join(str(err).split())
            lost = 1 + sum(1 for w in queue if w[0] == file)
            queue = [w for w in queue if w[0] != file]
            spare = [w for w in spare if w[0] not in bad]
            if len(spare) < lost:
                raise ValueError(
                    f"{pick.folder}: {pick.files[file]} failed to decode and too few other "
                    f"clips remain to replace its {lost}"
                ) from err
            warnings.warn(
                f"{pick.files[file]}: {err}; its {lost} clips are replaced by others",
                MediaWarning,
                stacklevel=2,
            )
            queue = spare[:lost] + queue
            spare = spare[lost:]


def _read_window(
    pick: ClipPick, file: int, first: int, protocol: Protocol, size: int, channel: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    path, info = pick.files[file], pick.infos[file]
    v = info.video
    t0 = _span(info, protocol)[0] + first / protocol.fps
    plan = plan_fit(v.width, v.height, size, "letterbox", protocol.interpolation)
    times = [t0 + k / protocol.fps for k in range(protocol.frames)]
    video = decode_video(path, times, plan, v)
    a = info.audio
    t1 = t0 + protocol.frames / protocol.fps
    lo, hi = max(t0, a.start), min(t1, a.end)
    audio = torch.zeros(1, protocol.audio_length)
    if hi > lo:
        part = decode_audio(path, lo, hi, protocol.audio_rate, a, channel)
        offset = round((lo - t0) * protocol.audio_rate)
        n = min(part.shape[1], protocol.audio_length - offset)
        audio[:, offset : offset + n] = part[:, :n]
    return video, audio
