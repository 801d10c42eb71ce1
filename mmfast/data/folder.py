"""A folder of videos with sound as a dataset of aligned (video, audio) clips for the coupled U-Net."""

from __future__ import annotations

import bisect
import warnings
from pathlib import Path

import torch

from mmfast.data.clip_index import VIDEO_EXTENSIONS, FileEntry, SourceRules, build_index
from mmfast.data.decode import DamagedClip, decode_audio, decode_video
from mmfast.data.probe import MediaError, MediaWarning, StreamSpan
from mmfast.data.resize import Resize, check_resize, plan_fit


class VideoFolderDataset:
    """Non-overlapping clips of `frames / fps` seconds from every video file under `root`.

    Frames are scaled with `interpolation` ("area", or "bicubic" as the SR stage's training does).
    Files (.mp4 .mkv .webm .avi, searched recursively) are probed once into a clip index, cached as
    JSON at `index_path` when given (put it in the run directory, never in the data folder) and
    reused while the files keep their sizes and modification times. Files that cannot be decoded or
    lack an audio track are skipped with one warning and listed in `skipped` (path -> reason), and
    so are sound tracks of digital silence (peak below 2^-15) unless `keep_silent`, and sources
    below `min_fps` or whose shorter side is below `min_size` pixels.

    `get(i)` returns
      video: [frames, 3, size, size] float32 in [-1, 1]; frame k is the source frame on screen at
             clip_start + k / fps, whatever the source frame rate;
      audio: [1, audio_length] float32 in [-1, 1], mono (channels averaged), exactly
             [clip_start, clip_start + frames / fps) resampled to `audio_rate`;
             audio_length = round(frames / fps * audio_rate) (25600 by default).
    A clip that fails to decode later (a file damaged after indexing) never stops a run: the file is
    marked bad with one warning, added to `skipped`, and the next good clip is returned instead.
    A damaged packet costs only the clips that need it: each is dropped the same way, with a
    warning naming the file and the time, and its start listed in `dropped` (path -> seconds).

    Example:
        >>> data = VideoFolderDataset("landscape/train", index_path="run/clips.json", hflip_p=0.5)
        >>> video, audio = data.get(0, generator=torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        root: str | Path,
        *,
        frames: int = 16,
        fps: float = 10.0,
        size: int = 64,
        audio_rate: int = 16000,
        resize: Resize = "letterbox",
        hflip_p: float = 0.0,
        index_path: str | Path | None = None,
        interpolation: str = "area",
        keep_silent: bool = False,
        min_fps: float = 0.0,
        min_size: int = 0,
    ) -> None:
        check_resize(resize)
        plan_fit(2, 2, 2, resize, interpolation)  # checks the name
        if frames < 1 or fps <= 0 or size < 1 or audio_rate < 1:
            raise ValueError(
                f"expected frames >= 1, fps > 0, size >= 1, audio_rate >= 1; got frames={frames}, "
                f"fps={fps}, size={size}, audio_rate={audio_rate}"
            )
        if not 0.0 <= hflip_p <= 1.0:
            raise ValueError(f"hflip_p must be in [0, 1], got {hflip_p}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data folder {self.root} does not exist or is not a folder")
        self.frames, self.fps, self.size = frames, float(fps), size
        self.audio_rate, self.resize, self.hflip_p = audio_rate, resize, hflip_p
        self.interpolation = interpolation
        self.clip_seconds = frames / self.fps
        self.audio_length = round(self.clip_seconds * audio_rate)

        index = build_index(
            self.root,
            self.clip_seconds,
            Path(index_path) if index_path is not None else None,
            SourceRules(keep_silent, min_fps, min_size),
        )
        self.probed = index.probed  # files probed by this build: 0 when the cache served all
        self.skipped: dict[str, str] = {
            str(self.root / f.path): f.skipped for f in index.files if f.skipped is not None
        }
        self._files: list[FileEntry] = [f for f in index.files if f.num_clips > 0]
        self._first_clip: list[int] = []  # global index of each usable file's first clip
        total = 0
        for f in self._files:
            self._first_clip.append(total)
            total += f.num_clips
        self._len = total
        self._bad: set[int] = set()  # files
        self._damaged: set[int] = set()  # clips
        self.dropped: dict[str, list[float]] = {}

        if not index.files:
            raise ValueError(
                f"no video files ({' '.join(VIDEO_EXTENSIONS)}) under {self.root.resolve()}"
            )
        if not self._files:
            raise ValueError(
                f"no usable video file under {self.root.resolve()}: all {len(index.files)} were "
                f"skipped ({_summary(self.skipped)})"
            )
        if self.skipped:
            warnings.warn(
                f"{self.root}: skipped {len(self.skipped)} of {len(index.files)} files "
                f"({_summary(self.skipped)}); see .skipped",
                MediaWarning,
                stacklevel=2,
            )

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.get(index)

    def get(
        self, index: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip `index` -> (video [F, 3, S, S], audio [1, L]); flipped left-right with probability
        `hflip_p` using one draw from `generator` (no draw and no flip without a generator)."""
        if not -self._len <= index < self._len:
            raise IndexError(f"clip index {index} out of range for {self._len} clips")
        index %= self._len
        flip = generator is not None and torch.rand((), generator=generator).item() < self.hflip_p
        for offset in range(self._len):
            i = (index + offset) % self._len
            file = bisect.bisect_right(self._first_clip, i) - 1
            if file in self._bad or i in self._damaged:
                continue
            try:
                video, audio = self._decode(file, i - self._first_clip[file])
            except DamagedClip as e:
                self._drop(i, file, e)
                continue
            except Exception as e:  # one bad file must not end a long run
                self._mark_bad(file, e if isinstance(e, MediaError) else _typed(e))
                continue
            return (video.flip(-1) if flip else video), audio
        raise RuntimeError(
            f"no clip under {self.root} can be decoded any more ({_summary(self.skipped)})"
        )

    def _decode(self, file: int, clip: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self._files[file]
        path = self.root / entry.path
        start = entry.start + clip * self.clip_seconds
        times = [start + k / self.fps for k in range(self.frames)]
        v_start, v_end, v_rate, width, height = entry.video
        a_start, a_end, a_rate = entry.audio
        plan = plan_fit(width, height, self.size, self.resize, self.interpolation)
        video = decode_video(path, times, plan, StreamSpan(v_start, v_end, v_rate, width, height))
        audio = decode_audio(
            path,
            start,
            start + self.clip_seconds,
            self.audio_rate,
            StreamSpan(a_start, a_end, a_rate),
        )
        return video, audio

    def _drop(self, clip: int, file: int, error: DamagedClip) -> None:
        self._damaged.add(clip)
        path = str(self.root / self._files[file].path)
        self.dropped.setdefault(path, []).append(error.at)
        warnings.warn(
            f"{error}; the clip is replaced by the next good one", MediaWarning, stacklevel=3
        )

    def _mark_bad(self, file: int, error: Exception | str) -> None:
        self._bad.add(file)
        path = str(self.root / self._files[file].path)
        reason = str(error).removeprefix(f"{path}: ")
        self.skipped[path] = f"decoding failed during the run: {reason}"
        warnings.warn(
            f"{path}: decoding failed ({reason}); its clips are replaced by the next good ones",
            MediaWarning,
            stacklevel=3,
        )


def _typed(error: Exception) -> str:
    return f"unexpected {type(error).__name__}: {error}"


def _summary(skipped: dict[str, str], shown: int = 3) -> str:
    items = [f"{Path(p).name}: {why}" for p, why in list(skipped.items())[:shown]]
    more = len(skipped) - shown
    return "; ".join(items) + (f"; and {more} more" if more > 0 else "")
