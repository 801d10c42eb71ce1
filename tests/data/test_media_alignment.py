"""Clips decoded by timestamps: frame k and audio segment k show the same instant, for source frame
rates 8, 24, 25, 29.97, 30 and 60 fps, audio rates 8000 .. 48000 Hz, mono and stereo, AAC, Opus
and PCM, in mp4, mkv, webm and avi, including a file whose audio starts 0.5 s after its video and
files with frequent keyframes and B-frames, where clips after the first second are reached by
seeking."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from media_samples import click_onsets, clicks, dominant_hz, grey, tone_hz, write_av

import mmfast.data.decode as decode
from mmfast.data import StreamSpan, VideoFolderDataset, read_media
from mmfast.data.resize import plan_fit

SECONDS = 3.3  # two clips of 1.6 s, with a short tail that must not make a third
CASES = {
    # A keyframe every 8 frames and B-frames (decoded out of presentation order): seeks land
    # mid-stream, some on keyframes presented after the frames decoded next.
    "30fps-mpeg4-bframes-gop8.mp4": dict(fps=30, audio_rate=32000, vcodec="mpeg4", gop=8),
    "25fps-aac44100-stereo.mp4": dict(fps=25, audio_rate=44100, channels=2),
    "29.97fps-aac22050-mono-64x48.mp4": dict(
        fps=Fraction(30000, 1001), audio_rate=22050, width=64, height=48
    ),
    "60fps-aac8000.mp4": dict(fps=60, audio_rate=8000),
    "30fps-pcm48000-stereo-late-audio.mkv": dict(
        fps=30, audio_rate=48000, channels=2, acodec="pcm_s16le", audio_start=0.5
    ),
    "24fps-vp9-opus48000-gop8.webm": dict(
        fps=24, audio_rate=48000, vcodec="libvpx-vp9", acodec="libopus", gop=8
    ),
    "8fps-mpeg4-pcm16000.avi": dict(fps=8, audio_rate=16000, vcodec="mpeg4", acodec="pcm_s16le"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("aligned")
    for name, spec in CASES.items():
        sub = root / "sub" if name.endswith(".webm") else root  # the scan is recursive
        sub.mkdir(exist_ok=True)
        write_av(sub / name, seconds=_seconds(name), **spec)
    return root


@pytest.fixture(scope="module")
def dataset(folder, tmp_path_factory):
    index = tmp_path_factory.mktemp("run") / "clips.json"
    return VideoFolderDataset(folder, size=32, index_path=index)


def _seconds(name: str) -> float:
    return 8.1 if "bframes" in name else SECONDS  # five clips, four of them reached by seeking


def _clips_of(dataset, name):
    """(global index, clip start in seconds) of every clip of file `name`."""
    for file, entry in enumerate(dataset._files):
        if entry.path.endswith(name):
            first = dataset._first_clip[file]
            return [
                (first + c, entry.start + c * dataset.clip_seconds) for c in range(entry.num_clips)
            ]
    raise AssertionError(f"{name} not indexed; skipped: {dataset.skipped}")


def test_every_file_is_indexed_with_the_clips_it_holds(dataset):
    assert dataset.skipped == {}
    # 3.3 s hold two 1.6 s clips; the late-audio file has 2.8 s of video with audio: one.
    expected = {name: 1 if "late-audio" in name else 2 for name in CASES}
    expected["30fps-mpeg4-bframes-gop8.mp4"] = 5
    assert {e.path.split("/")[-1]: e.num_clips for e in dataset._files} == expected
    assert len(dataset) == sum(expected.values())


@pytest.mark.parametrize("name", list(CASES))
def test_frame_k_and_audio_segment_k_show_the_same_instant(dataset, name):
    fps = float(Fraction(CASES[name]["fps"]))
    rate, seg = dataset.audio_rate, dataset.audio_rate // 10
    for index, start in _clips_of(dataset, name):
        video, audio = dataset[index]
        assert video.shape == (16, 3, 32, 32) and video.dtype == torch.float32
        assert audio.shape == (1, 25600) and audio.dtype == torch.float32
        assert video.min() >= -1 and video.max() <= 1 and audio.abs().max() <= 1

        # Frame k is the source frame on screen at start + k / 10 (grey level = its number).
        # (Sources at 1/1000 s timestamps - mkv, webm - round some frame times by < 1 ms, which
        # could move a frame across an instant; none of these cases puts one within 1 ms.)
        centre = ((video[:, :, 12:20, 12:20].mean(dim=(1, 2, 3)) + 1) * 127.5).numpy()
        shown = [grey(math.floor((start + k / 10) * fps + 1e-6)) for k in range(16)]
        np.testing.assert_allclose(centre, shown, atol=3.0, err_msg=f"{name} at {start} s")

        # Audio segment k carries the tone of [start + k / 10, start + (k + 1) / 10) ...
        x = audio[0].numpy()
        heard = [
            dominant_hz(x[k * seg + seg // 10 : (k + 1) * seg - seg // 10], rate) for k in range(16)
        ]
        wanted = tone_hz(start + np.arange(16) / 10 + 0.05)
        np.testing.assert_allclose(heard, wanted, atol=15.0, err_msg=f"{name} at {start} s")
        # ... to the millisecond: each click sits where it was put (the release lost ~67 ms).
        expected = [c - start for c in clicks(_seconds(name)) if start <= c < start + 1.6]
        onsets = click_onsets(x, rate)
        assert len(onsets) == len(expected), (name, start, onsets, expected)
        np.testing.assert_allclose(onsets, expected, atol=0.002, err_msg=f"{name} at {start} s")
        # Nothing lost at the end: the last 10 ms still hold the tone.
        assert np.abs(x[-160:]).max() > 0.15


def test_read_media_matches_the_dataset_clip(dataset, folder):
    name = "29.97fps-aac22050-mono-64x48.mp4"
    index, start = _clips_of(dataset, name)[1]
    video, audio = read_media(folder / name, size=32, start=start)
    ref_video, ref_audio = dataset[index]
    torch.testing.assert_close(video, ref_video)
    torch.testing.assert_close(audio, ref_audio)


def test_a_start_off_the_clip_grid_stays_aligned(folder):
    """read_media at an arbitrary start (0.77 s): 29.97 fps frames and 22050 Hz audio."""
    start = 0.77
    video, audio = read_media(
        folder / "29.97fps-aac22050-mono-64x48.mp4", size=32, audio_rate=8000, start=start
    )
    assert video.shape == (16, 3, 32, 32) and audio.shape == (1, 12800)
    centre = ((video[:, :, 12:20, 12:20].mean(dim=(1, 2, 3)) + 1) * 127.5).numpy()
    shown = [grey(math.floor((start + k / 10) * 30000 / 1001 + 1e-6)) for k in range(16)]
    np.testing.assert_allclose(centre, shown, atol=3.0)
    expected = [c - start for c in clicks(SECONDS) if start <= c < start + 1.6]
    np.testing.assert_allclose(click_onsets(audio[0].numpy(), 8000), expected, atol=0.002)


def test_seeking_gives_the_clips_that_decoding_from_the_start_gives(dataset, monkeypatch):
    """Clips from 1 s on are reached by seeking (to a keyframe, then decoding forward)."""
    seeked = [dataset[i] for i in range(len(dataset))]
    monkeypatch.setattr(decode, "_SEEK_MIN", math.inf)
    for i, (video, audio) in enumerate(seeked):
        ref_video, ref_audio = dataset[i]
        torch.testing.assert_close(video, ref_video, rtol=0, atol=0)
        # Audio decoders restart after a seek (AAC overlap, Opus pre-roll; 0.25 s of pre-roll
        # lets them settle), and 1 ms container timestamps (mkv, webm) can place the first frame
        # after a seek up to ~1 ms off: compare up to that shift.
        a, b = audio[0], ref_audio[0]
        best = min((a[s : len(a) + s - 32] - b[16 : len(b) - 16]).abs().max() for s in range(33))
        assert best < 0.05, (i, best)


def test_a_seek_past_the_first_wanted_frame_is_detected(dataset, folder):
    """decode_video starts over from the beginning when a seek lands on a keyframe presented
    after the first wanted instant; here one is forced by seeking 1 s too far."""
    name = "30fps-mpeg4-bframes-gop8.mp4"
    entry = next(e for e in dataset._files if e.path == name)
    times = [3.2 + k / 10 for k in range(16)]
    plan = plan_fit(32, 32, 32, "letterbox")
    span = StreamSpan(*entry.video)
    assert decode._pick_frames(folder / name, times, plan, span, seek_to=4.2) is None
    assert len(decode._pick_frames(folder / name, times, plan, span, seek_to=3.2)) == 16
