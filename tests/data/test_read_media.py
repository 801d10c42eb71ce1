"""read_media: one clip of a sound or video file, for conditioning inputs."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media_samples import click_onsets, clicks, grey, signal, write_av

from mmfast.data import MediaError, read_media


def _write_wav(path, rate: int, seconds: float, channels: int = 2):
    x = signal(rate, 0.0, seconds)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        data = (np.repeat(x[None], channels, axis=0).T.reshape(1, -1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_wav_gives_audio_only_resampled_and_aligned(tmp_path):
    wav = _write_wav(tmp_path / "clicks.wav", 44100, 2.0)
    video, audio = read_media(wav, start=0.3)
    assert video is None and audio.shape == (1, 25600)
    expected = [c - 0.3 for c in clicks(2.0) if 0.3 <= c < 1.9]
    np.testing.assert_allclose(click_onsets(audio[0].numpy(), 16000), expected, atol=0.001)
    # Stereo is averaged, not summed: the tone keeps its amplitude.
    assert 0.15 < np.abs(audio[0, 3200:8000].numpy()).max() < 0.25  # 0.5 .. 0.8 s: no click
    _, tiny = read_media(wav, audio_rate=2560)
    assert tiny.shape == (1, 4096)


def test_audio_shorter_than_the_clip_is_an_error_naming_the_lengths(tmp_path):
    wav = _write_wav(tmp_path / "short.wav", 16000, 1.2, channels=1)
    with pytest.raises(MediaError, match=r"needs 1\.600 s .*25600 samples.* has 1\.200 s .*19200"):
        read_media(wav)
    with pytest.raises(MediaError, match=r"from 0\.500 s"):
        read_media(wav, frames=8, start=0.5)  # 0.8 s from 0.5 s: 0.1 s missing
    _, audio = read_media(wav, frames=8, start=0.4)  # exactly up to the end
    assert audio.shape == (1, 12800)


def test_a_silent_video_gives_video_only(tmp_path):
    path = write_av(tmp_path / "silent.mp4", fps=30, seconds=2.0, audio_rate=None)
    video, audio = read_media(path, size=16, start=0.25)
    assert audio is None and video.shape == (16, 3, 16, 16)
    shown = [grey(int((0.25 + k / 10) * 30 + 1e-6)) for k in range(16)]
    np.testing.assert_allclose(((video[:, 0, 8, 8] + 1) * 127.5).numpy(), shown, atol=3)


def test_only_the_streams_asked_for_are_read_and_must_cover_the_clip(tmp_path):
    """A 3 s video whose sound ends at 1 s: its picture still conditions, its sound cannot."""
    path = tmp_path / "early-end.mkv"
    write_av(path, fps=25, seconds=3.0, acodec="pcm_s16le", audio_start=0.0)
    cut = tmp_path / "cut.mkv"
    with av.open(str(path)) as src, av.open(str(cut), "w") as out:
        v_in, a_in = src.streams.video[0], src.streams.audio[0]
        v_out, a_out = out.add_stream_from_template(v_in), out.add_stream_from_template(a_in)
        for packet in src.demux(v_in, a_in):
            if packet.dts is None:
                continue
            is_audio = packet.stream is a_in
            if is_audio and packet.pts * packet.time_base >= 1.0:
                continue
            packet.stream = a_out if is_audio else v_out
            out.mux(packet)
    with pytest.raises(MediaError, match=r"has 1\.0\d\d s of video with audio"):
        read_media(cut)
    video, audio = read_media(cut, start=1.2, streams=("video",))
    assert audio is None and video.shape == (16, 3, 64, 64)
    shown = [grey(int((1.2 + k / 10) * 25 + 1e-6)) for k in range(16)]
    np.testing.assert_allclose(((video[:, 0, 32, 32] + 1) * 127.5).numpy(), shown, atol=3)
    with pytest.raises(MediaError, match=r"has 1\.0\d\d s of audio"):
        read_media(cut, streams=("audio",))
    with pytest.raises(MediaError, match="has no video stream"):
        read_media(_write_wav(tmp_path / "a.wav", 16000, 2.0), streams=("video",))


def test_bad_inputs_are_named(tmp_path):
    path = write_av(tmp_path / "ok.mp4", fps=25, seconds=1.7)
    with pytest.raises(ValueError, match="resize must be one of"):
        read_media(path, resize="stretch")
    with pytest.raises(ValueError, match="start >= 0"):
        read_media(path, start=-1.0)
    (tmp_path / "fake.mp4").write_text("hello")
    with pytest.raises(MediaError, match="fake.mp4: cannot open as media"):
        read_media(tmp_path / "fake.mp4")
