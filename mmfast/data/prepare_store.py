"""Decode a folder of videos once into a clip store (see `mmfast.data.store`).

Every file is probed and its clips decoded with the folder dataset's rules (timestamps, fitting,
skipping; `VideoFolderDataset`), the video in one pass over the stream. Clips are gathered into
shards of about `shard_mb` MiB, each written atomically with, in its header, the facts of the files
it holds and of the files skipped. So a killed prepare resumes from the shards it finished, and a
rerun decodes only new or changed files (same path, size and mtime: done). The index is written
last, from the shards, once every file of the folder is in one.

Several processes: under torchrun every rank takes every world-th file (in path order), writes its
own shards, and rank 0 writes the index after a barrier; `shard=(i, n)` does the same for job i of
an array of n (the job that finds every file done writes the index).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmfast.data.clip_index import VIDEO_EXTENSIONS, FileEntry, SourceRules, probe_entry, scan
from mmfast.data.decode import DamagedClip, decode_audio, decode_video_clips
from mmfast.data.probe import MediaError, MediaWarning, StreamSpan
from mmfast.data.resize import check_resize, plan_fit
from mmfast.data.store import AUDIO_SCALE, FORMAT, INDEX, SHARDS, ClipParams
from mmfast.files import atomic_path


class StoreMismatch(ValueError):
    """The store folder holds clips made with other parameters."""


@dataclass
class PrepareResult:
    """What a prepare did: `decoded` files this call (the others were done already), the clips
    they gave, and whether the index was written (False while other ranks or jobs still work)."""

    store: Path
    files: int  # video files in the folder
    decoded: int
    clips: int
    skipped: dict[str, str]  # this call's skipped files (relative path -> reason)
    dropped: dict[str, list[float]]  # this call's dropped clips (relative path -> starts)
    index_written: bool
    seconds: float = 0.0


@dataclass
class _Done:
    """One file's result: its entry and, for a usable file, its clips."""

    entry: FileEntry
    video: np.ndarray | None = None  # uint8 [n, F, 3, S, S]
    audio: np.ndarray | None = None  # int16 [n, 1, L]
    clips: list[int] = field(default_factory=list)  # clip numbers kept
    dropped: list[tuple[int, float, str]] = field(default_factory=list)  # number, time, why

    @property
    def nbytes(self) -> int:
        return 0 if self.video is None else self.video.nbytes + self.audio.nbytes


def prepare(
    data: str | Path,
    out: str | Path,
    *,
    frames: int = 16,
    fps: float = 10.0,
    size: int = 64,
    audio_rate: int = 16000,
    resize: str = "letterbox",
    interpolation: str = "area",
    keep_silent: bool = False,
    min_fps: float = 0.0,
    min_size: int = 0,
    workers: int = 0,
    shard: tuple[int, int] | None = None,
    shard_mb: float = 256.0,
    progress: bool = True,
) -> PrepareResult:
    """Decode the clips of the video folder `data` into the clip store `out` (created, resumed or
    brought up to date). `workers` decoding processes (0: this one); `shard=(i, n)`: only job i of
    n. Read the store with `ClipStore(out)`.

    Example:
        >>> prepare("landscape/train", "landscape.store", workers=8)
        >>> len(ClipStore("landscape.store"))
    """
    started = time.monotonic()
    check_resize(resize)
    plan_fit(2, 2, 2, resize, interpolation)
    params = ClipParams(
        frames,
        float(fps),
        size,
        audio_rate,
        str(resize),
        interpolation,
        keep_silent,
        min_fps,
        min_size,
    )
    if frames < 1 or fps <= 0 or size < 1 or audio_rate < 1 or workers < 0 or shard_mb <= 0:
        raise ValueError(
            f"expected frames >= 1, fps > 0, size >= 1, audio_rate >= 1, workers >= 0, "
            f"shard_mb > 0; got {frames}, {fps}, {size}, {audio_rate}, {workers}, {shard_mb}"
        )
    root, out = Path(data), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    rank, world, group = _ranks(shard)
    try:
        if rank == 0 or shard is None:
            (out / SHARDS).mkdir(parents=True, exist_ok=True)
        _barrier(group)
        _check_params(out, params)
        paths = scan(root)
        if not paths:
            raise ValueError(
                f"no video files ({' '.join(VIDEO_EXTENSIONS)}) under {root.resolve()}"
            )
        done = {_key(e) for e, _ in _shard_entries(out)}
        mine = [p for i, p in enumerate(paths) if i % world == rank]
        todo = []
        for path in mine:
            stat = path.stat()
            key = (path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns)
            if key not in done:
                todo.append(key)
        show = progress and (rank == 0 or shard is not None)
        result = _run(root, out, params, todo, workers, rank, world, shard_mb, show)
        result.files = len(paths)
        _barrier(group)
        if shard is not None or rank == 0:
            result.index_written = write_index(root, out, params)
        result.seconds = time.monotonic() - started
        return result
    finally:
        if group:
            torch.distributed.destroy_process_group()


def _ranks(shard: tuple[int, int] | None) -> tuple[int, int, bool]:
    """(this process's part, the number of parts, whether a process group was started)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if shard is not None:
        i, n = shard
        if world > 1:
            raise ValueError("use either torchrun or shard=(i, n), not both")
        if not 0 <= i < n:
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
        return i, n, False
    if world == 1:
        return 0, 1, False
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend="gloo")
    return dist.get_rank(), dist.get_world_size(), started


def _barrier(group: bool) -> None:
    if group:
        torch.distributed.barrier()


def _key(entry: dict) -> tuple[str, int, int]:
    return entry["path"], entry["size"], entry["mtime_ns"]


def _check_params(out: Path, params: ClipParams) -> None:
    """A store holds clips of one set of parameters: refuse to mix."""
    for shard in sorted((out / SHARDS).glob("*.safetensors")):
        theirs = ClipParams.from_json(_metadata(shard)["params"])
        if theirs != params:
            raise StoreMismatch(
                f"{out} holds clips with {theirs.differences(params)}: "
                "prepare into another folder, or with the same parameters"
            )
        return


def _metadata(shard: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(shard), framework="pt") as f:
        return f.metadata()


def _shard_entries(out: Path) -> Iterable[tuple[dict, str]]:
    """(file entry, shard name) of every finished shard; entries of skipped files have a
    "skipped" reason and no clips."""
    for shard in sorted((out / SHARDS).glob("*.safetensors")):
        meta = _metadata(shard)
        if meta.get("format") != FORMAT:
            continue
        for entry in json.loads(meta["files"]):
            yield entry, shard.name


def _run(root, out, params, todo, workers, rank, world, shard_mb, progress) -> PrepareResult:
    result = PrepareResult(out, 0, len(todo), 0, {}, {}, False)
    if not todo:
        return result
    tag = f"{rank:05d}-of-{world:05d}-{uuid.uuid4().hex[:8]}"
    label = "prepare" if world == 1 else f"prepare {rank + 1}/{world}"
    pool = None
    if workers > 0:
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(workers, initializer=torch.set_num_threads, initargs=(1,))
    try:
        probe_jobs = [(root / rel, rel, size, mtime, params) for rel, size, mtime in todo]
        entries = list(_map(pool, _probe_one, probe_jobs))
        total = sum(e.num_clips for e in entries)
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total,
            desc=label,
            unit="clip",
            dynamic_ncols=True,
            disable=not progress,
        )
        pending: list[_Done] = []
        written = 0
        decode_jobs = [(root, e, params) for e in entries]
        for done in _map(pool, _decode_one, decode_jobs):
            _report(done, root, result)
            bar.update(done.entry.num_clips)
            pending.append(done)
            if sum(d.nbytes for d in pending) >= shard_mb * 2**20:
                _write_shard(out, f"{tag}-{written:05d}", params, pending)
                pending, written = [], written + 1
        if pending:
            _write_shard(out, f"{tag}-{written:05d}", params, pending)
        bar.close()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return result


def _map(pool, fn, jobs):
    return map(fn, jobs) if pool is None else pool.imap_unordered(fn, jobs)


def _probe_one(job) -> FileEntry:
    path, rel, size, mtime_ns, params = job
    entry = probe_entry(path, rel, size, mtime_ns, params.clip_seconds)
    rules = SourceRules(params.keep_silent, params.min_fps, params.min_size)
    return rules.apply(entry)


def _decode_one(job) -> _Done:
    """A file's clips, decoded as `VideoFolderDataset` decodes them."""
    root, entry, params = job
    if entry.skipped is not None:
        return _Done(entry)
    path = root / entry.path
    starts = [entry.start + k * params.clip_seconds for k in range(entry.num_clips)]
    v_start, v_end, v_rate, width, height = entry.video
    a_start, a_end, a_rate = entry.audio
    plan = plan_fit(width, height, params.size, params.resize, params.interpolation)
    video_span = StreamSpan(v_start, v_end, v_rate, width, height)
    audio_span = StreamSpan(a_start, a_end, a_rate)
    videos, audios, kept, dropped = [], [], [], []
    try:
        clips = decode_video_clips(path, starts, params.frames, params.fps, plan, video_span)
        for k, video in clips:
            if isinstance(video, DamagedClip):
                dropped.append((k, video.at, str(video)))
                continue
            if isinstance(video, MediaError):
                raise video  # the file fails as it fails in the folder dataset
            try:
                audio = decode_audio(
                    path, starts[k], starts[k] + params.clip_seconds, params.audio_rate, audio_span
                )
            except DamagedClip as e:
                dropped.append((k, e.at, str(e)))
                continue
            videos.append(video.numpy())
            audios.append(_quantize(audio))
            kept.append(k)
    except MediaError as e:
        return _Done(_skip(entry, str(e).removeprefix(f"{path}: ")))
    except Exception as e:  # one odd file must not stop a long prepare
        return _Done(_skip(entry, f"unexpected {type(e).__name__}: {e}"))
    if not kept:
        return _Done(_skip(entry, "every clip is damaged"), dropped=dropped)
    return _Done(entry, np.stack(videos), np.stack(audios), kept, dropped)


def _skip(entry: FileEntry, reason: str) -> FileEntry:
    return FileEntry(entry.path, entry.size, entry.mtime_ns, skipped=reason)


def _quantize(audio: torch.Tensor) -> np.ndarray:
    """float [1, L] in [-1, 1] -> int16 [1, L] (round to nearest: error <= 0.5 / 32767)."""
    return torch.round(audio.clamp(-1.0, 1.0) * AUDIO_SCALE).to(torch.int16).numpy()


def _report(done: _Done, root: Path, result: PrepareResult) -> None:
    path = root / done.entry.path
    for _, at, why in done.dropped:
        warnings.warn(f"{why}; the clip is dropped", MediaWarning, stacklevel=4)
        result.dropped.setdefault(done.entry.path, []).append(at)
    if done.entry.skipped is not None:
        result.skipped[done.entry.path] = done.entry.skipped
        warnings.warn(f"{path}: skipped ({done.entry.skipped})", MediaWarning, stacklevel=4)
    result.clips += len(done.clips)


def _write_shard(out: Path, name: str, params: ClipParams, done: list[_Done]) -> None:
    """One shard, atomically: the clips of `done` and, in its header, their files' facts."""
    from safetensors.torch import save_file

    files, row = [], 0
    for d in done:
        entry = asdict(d.entry)
        entry.update(clips=d.clips, row=row, dropped=d.dropped)
        files.append(entry)
        row += len(d.clips)
    usable = [d for d in done if d.video is not None]
    shape = (params.frames, 3, params.size, params.size)
    video = np.concatenate([d.video for d in usable]) if usable else np.zeros((0, *shape), np.uint8)
    audio = (
        np.concatenate([d.audio for d in usable])
        if usable
        else np.zeros((0, 1, params.audio_length), np.int16)
    )
    meta = {"format": FORMAT, "params": params.to_json(), "files": json.dumps(files)}
    path = out / SHARDS / f"{name}.safetensors"
    with atomic_path(path) as tmp:
        tensors = {"video": torch.from_numpy(video), "audio": torch.from_numpy(audio)}
        save_file(tensors, str(tmp), metadata=meta)


def write_index(data: str | Path, out: str | Path, params: ClipParams) -> bool:
    """Write `out`'s index from its shards if every file now in `data` is in one (True), else
    leave it (False). Shards that hold no file of the folder any more are removed."""
    root, out = Path(data), Path(out)
    current = {}
    for path in scan(root):
        stat = path.stat()
        current[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    live: dict[str, tuple[dict, str]] = {}
    holding: dict[str, bool] = {}
    for entry, shard in _shard_entries(out):
        holding.setdefault(shard, False)
        if current.get(entry["path"]) == (entry["size"], entry["mtime_ns"]):
            live.setdefault(entry["path"], (entry, shard))  # the first, in shard name order
            holding[shard] = True
    if set(live) != set(current):
        return False
    files, skipped = [], {}
    for rel in sorted(live):
        entry, shard = live[rel]
        if entry["skipped"] is not None:
            skipped[rel] = entry["skipped"]
            continue
        files.append(
            {
                "path": rel,
                "size": entry["size"],
                "mtime_ns": entry["mtime_ns"],
                "start": entry["start"],
                "clips": entry["clips"],
                "shard": shard,
                "row": entry["row"],
                "dropped": entry["dropped"],
            }
        )
    index = {
        "format": FORMAT,
        "params": asdict(params),
        "source": str(root.resolve()),
        "clips": sum(len(f["clips"]) for f in files),
        "files": files,
        "skipped": skipped,
    }
    with atomic_path(out / INDEX) as tmp:
        tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
    for shard, used in holding.items():
        if not used:
            (out / SHARDS / shard).unlink(missing_ok=True)
    return True
