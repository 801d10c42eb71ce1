"""A clip store: the clips of a video folder decoded once (`mmfast.data.prepare`), read back by
memory map with no decoding.

Layout of a store folder:
  index.json                  the clip parameters, every source file (path, size, mtime, clip
                              starts, shard and row), the files skipped and why, the clips dropped
  shards/NAME.safetensors     video uint8 [N, F, 3, S, S] and audio int16 [N, 1, L] (mono, at the
                              clip's audio rate, round(x * 32767): within 1.6e-5 of the decoded
                              float), and in the header the same facts for the files it holds

Why safetensors: a header of shapes, dtypes and offsets, then raw tensors, memory-mapped and sliced
without copying the shard or running code; already a dependency, and its header carries each
shard's own index, so a killed prepare resumes from the shards alone. Weighed against it: numpy
memory maps (as fast, but a shard is several bare files and the facts live elsewhere), WebDataset
(tar shards read in sequence: no random access, so no exact resume of the trainer's permutation),
MosaicML Streaming's MDS (random access and object storage, but a large dependency whose own
sampler and resume state would replace the trainer's draws).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

INDEX = "index.json"
SHARDS = "shards"
FORMAT = "mmfast.clip-store/1"
AUDIO_SCALE = 32767.0  # int16 full scale: stored = round(clamp(x, -1, 1) * AUDIO_SCALE)


@dataclass(frozen=True)
class ClipParams:
    """What a clip is: `frames` frames at `fps` of `size` x `size` pixels (fitted by `resize`
    with `interpolation`) and round(frames / fps * audio_rate) samples, from sources that pass
    the rules (silence skipped unless `keep_silent`; `min_fps`; `min_size`, the shorter side)."""

    frames: int = 16
    fps: float = 10.0
    size: int = 64
    audio_rate: int = 16000
    resize: str = "letterbox"
    interpolation: str = "area"
    keep_silent: bool = False
    min_fps: float = 0.0
    min_size: int = 0

    @property
    def clip_seconds(self) -> float:
        return self.frames / self.fps

    @property
    def audio_length(self) -> int:
        return round(self.clip_seconds * self.audio_rate)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClipParams:
        return cls(**json.loads(text))

    def differences(self, other: ClipParams) -> str:
        a, b = asdict(self), asdict(other)
        return ", ".join(f"{k} {a[k]!r} (not {b[k]!r})" for k in a if a[k] != b[k])


def is_store(path: str | Path) -> bool:
    """Whether `path` is a clip store folder (it holds an index written by `prepare`)."""
    return (Path(path) / INDEX).is_file()


def read_index(store: str | Path) -> dict:
    """The parsed index of a store; a clear error when it is missing or not a store's."""
    path = Path(store) / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{store} is not a clip store: it has no {INDEX} (make one with `mmfast prepare`)"
        ) from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable clip store index ({e})") from None
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}")
    return index


class ClipStore:
    """The clips of a store folder as a dataset, exactly as `VideoFolderDataset` gives them.

    `get(i)` returns (video [frames, 3, size, size] float32 in [-1, 1], audio [1, audio_length]
    float32 in [-1, 1]): the video bit for bit the folder dataset's clip, the audio within
    0.5 / 32767 of it. Clip i is the folder dataset's clip i (files in path order, clips in time
    order) unless the store dropped clips it could not decode. Shards are memory-mapped lazily in
    each process, so the store pickles into DataLoader workers.

    Example:
        >>> store = ClipStore("landscape.store", hflip_p=0.5)
        >>> video, audio = store.get(0, generator=torch.Generator().manual_seed(0))
    """

    def __init__(self, root: str | Path, *, hflip_p: float = 0.0) -> None:
        if not 0.0 <= hflip_p <= 1.0:
            raise ValueError(f"hflip_p must be in [0, 1], got {hflip_p}")
        self.root = Path(root)
        index = read_index(self.root)
        self.params = ClipParams(**index["params"])
        self.hflip_p = hflip_p
        self.frames, self.fps, self.size = self.params.frames, self.params.fps, self.params.size
        self.audio_rate, self.audio_length = self.params.audio_rate, self.params.audio_length
        self.source = index["source"]
        self.skipped: dict[str, str] = dict(index["skipped"])
        self.dropped: dict[str, list[float]] = {}
        self._shards: list[str] = sorted({f["shard"] for f in index["files"]})
        shard_id = {name: k for k, name in enumerate(self._shards)}
        self._files: list[tuple[str, float, list[int]]] = []  # path, start, kept clip numbers
        shards, rows, first = [], [], []
        total = 0
        for f in index["files"]:
            first.append(total)
            self._files.append((f["path"], f["start"], f["clips"]))
            n = len(f["clips"])
            shards.append(np.full(n, shard_id[f["shard"]], dtype=np.int32))
            rows.append(f["row"] + np.arange(n, dtype=np.int64))
            total += n
            if f["dropped"]:
                self.dropped[f["path"]] = [at for _, at, _ in f["dropped"]]
        self._first = first
        self._shard = np.concatenate(shards) if shards else np.zeros(0, np.int32)
        self._row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self._open: dict[int, tuple] = {}
        if total == 0:
            raise ValueError(f"the clip store {self.root} holds no clips")

    def __len__(self) -> int:
        return len(self._row)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.get(index)

    def get(
        self, index: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip `index` -> (video [F, 3, S, S], audio [1, L]); flipped left-right with
        probability `hflip_p` using one draw from `generator` (no draw, no flip without one)."""
        video, audio = self.get_raw(index)
        flip = generator is not None and torch.rand((), generator=generator).item() < self.hflip_p
        if flip:
            video = video.flip(-1)
        # In place, the folder dataset's arithmetic (x / 127.5 - 1): the same float32 values.
        video = video.to(torch.float32).div_(127.5).sub_(1.0)
        return video, audio.to(torch.float32).div_(AUDIO_SCALE)

    def get_raw(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip `index` as stored: (video uint8 [F, 3, S, S], audio int16 [1, L])."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} clips")
        index %= len(self)
        video, audio = self._slices(int(self._shard[index]))
        row = int(self._row[index])
        return video[row], audio[row]

    def clip_source(self, index: int) -> tuple[str, float]:
        """(source file relative to the prepared folder, clip start in seconds on its timeline)."""
        index %= len(self)
        f = bisect.bisect_right(self._first, index) - 1
        path, start, clips = self._files[f]
        return path, start + clips[index - self._first[f]] * self.params.clip_seconds

    def _slices(self, shard: int):
        if shard not in self._open:
            from safetensors import safe_open

            handle = safe_open(str(self.root / SHARDS / self._shards[shard]), framework="pt")
            self._open[shard] = (handle, handle.get_slice("video"), handle.get_slice("audio"))
        return self._open[shard][1:]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"] = {}  # memory maps are opened again in each process
        return state
