"""Which clips an evaluation measures, and how they are read, under each protocol."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from mmfast.data.probe import MediaWarning
from mmfast.eval.clips import folder_digest, frame_size, pick_clips, read_clips
from mmfast.eval.features import i3d_input
from mmfast.eval.protocol import PROTOCOLS

DEFAULT, RELEASE = PROTOCOLS["default"], PROTOCOLS["mmdiffusion"]


def write_stereo(
    path: Path, seconds: float, *, size=(40, 30), rate=44100, audio_seconds=None, fps=10
) -> Path:
    """A clip whose left channel is a 440 Hz tone and right channel silence; frame j is grey
    level 16 + 4 * j (so frames can be told apart)."""
    audio_seconds = seconds if audio_seconds is None else audio_seconds
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout="stereo")
        for j in range(round(seconds * fps)):
            img = np.full((size[1], size[0], 3), 16 + 4 * j, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = j, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        n = round(audio_seconds * rate)
        t = np.arange(n) / rate
        both = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.zeros(n)]).astype(np.float32)
        resampler = av.AudioResampler(format=audio.format.name, layout="stereo", rate=rate)
        for at in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(both[:, at : at + 1024]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, at, Fraction(1, rate)
            for c in resampler.resample(frame):
                out.mux(audio.encode(c))
        for c in resampler.resample(None):
            out.mux(audio.encode(c))
        out.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-clips")
    write_stereo(root / "a.mp4", 3.4)  # 34 frames: 2 clips of 16, 19 windows at stride 1
    (root / "sub").mkdir()
    write_stereo(root / "sub" / "b.mp4", 1.7)  # 17 frames: 1 clip, 2 windows
    (root / "notes.txt").write_text("not a video")
    return root


def test_windows_per_protocol(folder):
    seeded = pick_clips(folder, 3, DEFAULT, seed=0)
    assert seeded.available == 3 and sorted(seeded.windows) == [(0, 0), (0, 16), (1, 0)]
    release = pick_clips(folder, 21, RELEASE, seed=0)
    assert release.available == 19 + 2 and not release.repeated
    assert sorted(release.windows) == [(0, k) for k in range(19)] + [(1, 0), (1, 1)]


def test_seeded_pick_is_reproducible_and_short_folders_fail(folder):
    a, b = pick_clips(folder, 2, DEFAULT, seed=5), pick_clips(folder, 2, DEFAULT, seed=5)
    assert a.windows == b.windows
    picks = {tuple(pick_clips(folder, 2, DEFAULT, seed=s).windows) for s in range(8)}
    assert len(picks) > 1
    with pytest.raises(ValueError, match=r"3 clips .* fewer than --num 4"):
        pick_clips(folder, 4, DEFAULT, seed=0)


def test_release_pick_repeats_a_short_folder(folder):
    pick = pick_clips(folder, 50, RELEASE, seed=0)
    assert pick.repeated and len(pick.windows) == 50 and pick.available == 21
    assert pick.windows[21:42] == pick.windows[:21]  # the same shuffled order again


def test_read_clips_default_protocol(folder):
    pick = pick_clips(folder, 3, DEFAULT, seed=0)
    clips = list(read_clips(pick, DEFAULT, 32))
    assert len(clips) == 3
    for (_, first), (video, audio) in zip(pick.windows, clips):
        assert video.shape == (16, 3, 32, 32) and audio.shape == (1, 25600)
        # Letterboxed 40x30 -> 32x24: black bars of 4 rows above and below.
        assert video[:, :, :3].max() == -1.0 and video[:, :, 5:-5].min() > -1.0
        grey = (video[:, 0, 16, 16] + 1) * 127.5
        expected = torch.tensor([16 + 4.0 * (first + k) for k in range(16)])
        assert (grey - expected).abs().max() < 4
        # Mean of a 0.5-amplitude tone and silence: RMS 0.25 / sqrt(2).
        assert audio.square().mean().sqrt().item() == pytest.approx(0.25 / math.sqrt(2), rel=0.05)


def test_read_clips_release_protocol_takes_channel_0_at_44k(folder):
    pick = dataclasses.replace(pick_clips(folder, 21, RELEASE, seed=0), windows=[(1, 1)])
    ((video, audio),) = list(read_clips(pick, RELEASE, 64))
    assert video.shape == (16, 3, 64, 64) and audio.shape == (1, 70560)
    assert audio.square().mean().sqrt().item() == pytest.approx(0.5 / math.sqrt(2), rel=0.05)
    grey = (video[:, 0, 32, 32] + 1) * 127.5
    assert (grey - torch.tensor([16 + 4.0 * (1 + k) for k in range(16)])).abs().max() < 4


def test_release_pads_short_sound_with_zeros(tmp_path):
    write_stereo(tmp_path / "c.mp4", 1.6, audio_seconds=1.0)
    pick = pick_clips(tmp_path, 1, RELEASE, seed=0)
    ((_, audio),) = list(read_clips(pick, RELEASE, 64))
    assert audio[0, : 44100 - 2000].abs().max() > 0.3
    assert audio[0, 44100 + 2000 :].abs().max() == 0.0
    with (
        pytest.raises(ValueError, match="no clip of 1.6 s"),
        pytest.warns(MediaWarning, match="c.mp4"),
    ):
        pick_clips(tmp_path, 1, DEFAULT, seed=0)  # the default protocol needs sound throughout


def test_frame_size_and_digest(folder, tmp_path):
    assert frame_size(folder) == 40
    before = folder_digest(folder)
    assert folder_digest(folder) == before
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "a.mp4").write_bytes((folder / "a.mp4").read_bytes())
    assert folder_digest(copy) != before


def test_i3d_input_scales_crops_and_truncates():
    g = torch.Generator().manual_seed(0)
    videos = torch.rand(2, 16, 3, 64, 64, generator=g) * 2 - 1
    x = i3d_input(videos, DEFAULT)
    assert x.shape == (2, 3, 16, 224, 224) and x.min() >= -1 and x.max() <= 1
    wide = i3d_input(torch.zeros(1, 16, 3, 48, 64), DEFAULT)
    assert wide.shape == (1, 3, 16, 224, 224)
    # The release's uint8 truncation: 127.5 * (x + 1) rounds down.
    just_below = torch.full((1, 16, 3, 64, 64), (100.9 / 127.5) - 1)
    released = i3d_input(just_below, RELEASE)
    assert released.mul(0.5).add(0.5).mul(255).round().unique().tolist() == [100.0]
    with pytest.raises(ValueError, match=r"\[B, F, 3, H, W\]"):
        i3d_input(torch.zeros(16, 3, 64, 64), DEFAULT)
