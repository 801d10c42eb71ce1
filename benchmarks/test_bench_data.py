"""Reading training clips: decoding a folder of videos (`VideoFolderDataset`) against a clip store
(`ClipStore`, made from the same folder by `mmfast.data.prepare`), then the trainer's DataLoader
over the store. CPU, one process, torch on one thread: clips/s per core.

The folder holds H.264 + AAC files shaped like the paper's sources, made here with PyAV and kept
short (4 s) so the run stays quick: 1280x720 at 30 fps (Landscape's YouTube videos) and 1920x1080
at 60 fps (AIST++). A read is one clip of the released shape (16 frames of 64x64, 1.6 s of sound at
16 kHz, a flip drawn from a generator); each round reads every clip of the group's file. The store
rows read the same clips from the page cache. `clips_per_s` is in each row's extra_info.

Last: batches/s of the trainer's DataLoader (`mmfast.train.trainer._loader`) from the store with 2
worker processes, batch 4 (the release's per-GPU batch) at 16x3x64x64 + [1, 25600].
"""

from __future__ import annotations

import tempfile
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfast.data import ClipStore, VideoFolderDataset, prepare
from mmfast.train import get_train_config
from mmfast.train.distributed import DistInfo
from mmfast.train.trainer import _loader

av = pytest.importorskip("av", reason="needs PyAV to write and decode the H.264 + AAC sources")

SOURCES = {"720p30": (1280, 720, 30), "1080p60": (1920, 1080, 60)}
SECONDS = 4.0  # two 1.6 s clips a file


def _write_source(path: Path, width: int, height: int, fps: int) -> None:
    """Moving gradients with texture (a camera pan's worth of detail) and a chord, H.264 (x264
    veryfast, B-frames, keyframe every 2 s) + AAC 48 kHz stereo."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23"}
        video.codec_context.gop_size = 2 * fps
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        texture = np.random.default_rng(0).integers(0, 24, (height, width), dtype=np.uint8)
        for j in range(int(SECONDS * fps)):
            shift = 8 * j
            image = np.stack(
                [(x + shift) % 256, (y + shift // 2) % 256, (x + y - shift) % 256], axis=-1
            ).astype(np.uint8)
            image[..., 1] += texture
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = j, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(int(SECONDS * 48000)) / 48000
        chord = 0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 330 * t))
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        for at in range(0, len(t), 1024):
            chunk = np.repeat(chord[None, at : at + 1024], 2, axis=0).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, at, Fraction(1, 48000)
            for converted in resampler.resample(frame):
                out.mux(audio.encode(converted))
        out.mux(audio.encode(None))


@pytest.fixture(scope="module")
def data():
    """{source: (folder dataset, store)} over a folder of one file per source shape."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        made = {}
        for name, (width, height, fps) in SOURCES.items():
            folder = Path(tmp) / name
            folder.mkdir()
            _write_source(folder / f"{name}.mp4", width, height, fps)
            store = Path(tmp) / f"{name}.store"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepare(folder, store, progress=False)
            made[name] = (VideoFolderDataset(folder, hflip_p=0.5), ClipStore(store, hflip_p=0.5))
        yield made


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("reader", ["folder", "store"])
def test_clip_reads(benchmark, data, source, reader):
    folder, store = data[source]
    dataset = folder if reader == "folder" else store
    assert len(folder) == len(store) == 2
    repeats = 1 if reader == "folder" else 200  # enough store reads for a stable time
    generator = torch.Generator().manual_seed(0)

    def read_all():
        for _ in range(repeats):
            for i in range(len(dataset)):
                video, audio = dataset.get(i, generator=generator)
        assert video.shape == (16, 3, 64, 64) and audio.shape == (1, 25600)

    benchmark.group = f"clip read 16x64x64 from {source} H.264+AAC (1 core)"
    benchmark.pedantic(read_all, rounds=3, warmup_rounds=1, iterations=1)
    clips = repeats * len(dataset)
    benchmark.extra_info["clips_per_round"] = clips
    benchmark.extra_info["clips_per_s"] = clips / benchmark.stats.stats.median


def test_trainer_loader_from_the_store(benchmark, data):
    """The trainer's DataLoader over the store, 2 workers, batch 4: what a training step waits for."""
    _, store = data["720p30"]
    config = get_train_config("mmdiffusion-64", data="store", num_workers=2, batch_size=4)
    batches = iter(_loader(store, config, DistInfo(), 0))
    video, audio = next(batches)  # workers started
    assert video.shape == (4, 16, 3, 64, 64) and audio.shape == (4, 1, 25600)
    n = 200

    def take():
        for _ in range(n):
            next(batches)

    benchmark.group = "trainer DataLoader from the store, 2 workers, batch 4"
    benchmark.pedantic(take, rounds=3, warmup_rounds=1, iterations=1)
    benchmark.extra_info["batches_per_s"] = n / benchmark.stats.stats.median
    benchmark.extra_info["clips_per_s"] = 4 * n / benchmark.stats.stats.median
