"""write_clip (mp4: H.264 yuv420p + AAC) and write_preview (PNG), checked by decoding what was
written with PyAV and matplotlib."""

from __future__ import annotations

import math

import av
import matplotlib.image
import numpy as np
import pytest
import torch

from mmfast.data import read_media, write_clip, write_preview


def _clip(frames: int, height: int, width: int, length: int, rate: float):
    """A diagonal ramp that brightens frame by frame, and a 440 Hz tone with a slow swell."""
    x = torch.linspace(-0.8, 0.4, width)[None, :] + torch.linspace(0, 0.3, height)[:, None]
    video = (x[None] + torch.linspace(0, 0.3, frames)[:, None, None])[:, None].repeat(1, 3, 1, 1)
    video[:, 1] *= 0.5
    video[:, 2] = -video[:, 2]
    t = torch.arange(length) / rate
    audio = (0.2 + 0.3 * t / t[-1]) * torch.sin(2 * math.pi * 440 * t)
    return video, audio[None]


def _decoded_frames(path) -> torch.Tensor:
    """Every frame of the file as stored: [F, 3, H, W] in [-1, 1]."""
    with av.open(str(path)) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _streams(path):
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        frames = sum(1 for _ in c.decode(v))
        facts = dict(
            vcodec=v.codec_context.name,
            pix_fmt=v.codec_context.pix_fmt,
            fps=v.average_rate,
            width=v.codec_context.width,
            height=v.codec_context.height,
            frames=frames,
            acodec=a.codec_context.name,
            rate=a.rate,
            channels=a.codec_context.channels,
        )
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        ends = [float((p.pts + p.duration) * a.time_base) for p in c.demux(a) if p.size]
    facts["audio_seconds"] = max(ends)
    return facts


def test_round_trip_16khz(tmp_path):
    video, audio = _clip(16, 64, 64, 25600, 16000)
    path = write_clip(tmp_path / "out" / "clip.mp4", video, audio)
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temp file left
    facts = _streams(path)
    assert facts == dict(
        vcodec="h264",
        pix_fmt="yuv420p",
        fps=10,
        width=64,
        height=64,
        frames=16,
        acodec="aac",
        rate=16000,
        channels=1,
        audio_seconds=pytest.approx(1.6, abs=1e-6),
    )
    back_video, back_audio = read_media(path, size=64)
    assert back_audio.shape == (1, 25600)
    assert (back_video - video).abs().mean() < 0.02
    assert (back_audio - audio).abs().mean() < 0.01
    assert (back_audio - audio)[:, 1000:-1000].abs().max() < 0.05


def test_a_float_rate_is_written_as_the_whole_number_it_is(tmp_path):
    """`mmfast sample` once failed on every released-size clip: 25600 samples in 1.6 s is a rate of
    16000.0, which PyAV refuses; a rate that is not whole is an error, not a silent change."""
    from types import SimpleNamespace

    from mmfast.generate import audio_rate
    from mmfast.models.config import get_config

    released = SimpleNamespace(config=get_config("mmdiffusion-64"))
    rate = audio_rate(released, 10.0)
    assert rate == 16000 and isinstance(rate, int)
    video, audio = _clip(16, 16, 16, 25600, 16000)
    path = write_clip(tmp_path / "f.mp4", video, audio, audio_rate=16000.0)
    assert _streams(path)["rate"] == 16000
    with pytest.raises(ValueError, match="whole number of Hz, got 16000.5"):
        write_clip(tmp_path / "g.mp4", video, audio, audio_rate=16000.5)
    assert not (tmp_path / "g.mp4").exists()


def test_round_trip_tiny_preset_rate_and_odd_size(tmp_path):
    """2560 Hz is not an AAC rate players take: stored at 16 kHz, same duration."""
    video, audio = _clip(16, 31, 33, 4096, 2560)
    path = write_clip(tmp_path / "tiny.mp4", video, audio[0], audio_rate=2560, scale=2)
    facts = _streams(path)
    assert (facts["width"], facts["height"]) == (66, 62)  # 2x, then even
    assert (facts["frames"], facts["fps"], facts["rate"]) == (16, 10, 16000)
    assert facts["audio_seconds"] == pytest.approx(1.6, abs=1e-6)
    _, back_audio = read_media(path, audio_rate=2560)
    assert back_audio.shape == (1, 4096)
    assert (back_audio - audio).abs().mean() < 0.01
    # The picture is stored at 2x, its last row and column repeated to make 62x66 even.
    stored = _decoded_frames(path)
    assert stored.shape == (16, 3, 62, 66)
    assert (torch.nn.functional.avg_pool2d(stored, 2) - video).abs().mean() < 0.02
    assert (stored[:, :, 61] - stored[:, :, 60]).abs().mean() < 0.03


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_a_callers_autocast_does_not_reach_the_files(tmp_path, dtype):
    """Under a caller's CPU autocast (sampling in 16 bits) the resampling and the spectrogram
    still run in fp32: the same PNG bytes and the same stored sound as without it."""
    video, audio = _clip(16, 32, 32, 4096, 2560)  # 2560 Hz: resampled to 16 kHz on the way
    plain_mp4 = write_clip(tmp_path / "plain.mp4", video, audio, audio_rate=2560)
    plain_png = write_preview(tmp_path / "plain.png", video, audio, audio_rate=2560)
    with torch.autocast("cpu", dtype=dtype):
        mp4 = write_clip(tmp_path / "amp.mp4", video, audio, audio_rate=2560)
        png = write_preview(tmp_path / "amp.png", video, audio, audio_rate=2560)
    assert png.read_bytes() == plain_png.read_bytes()
    _, sound = read_media(mp4, audio_rate=16000)
    _, plain_sound = read_media(plain_mp4, audio_rate=16000)
    assert torch.equal(sound, plain_sound)


def test_writer_rejects_what_it_cannot_write(tmp_path):
    video, audio = _clip(4, 16, 16, 6400, 16000)
    with pytest.raises(ValueError, match=r"video must be \[F, 3, H, W\], got \(4, 16, 16\)"):
        write_clip(tmp_path / "x.mp4", video[:, 0], audio)
    with pytest.raises(ValueError, match=r"audio must be \[1, L\] or \[L\], got \(2, 6400\)"):
        write_clip(tmp_path / "x.mp4", video, audio.expand(2, -1))
    with pytest.raises(ValueError, match="NaN"):
        write_clip(tmp_path / "x.mp4", video * float("nan"), audio)
    assert list(tmp_path.iterdir()) == []


def test_out_of_range_values_are_clipped(tmp_path):
    video, audio = _clip(4, 16, 16, 6400, 16000)
    path = write_clip(tmp_path / "loud.mp4", video * 3, audio * 5)
    back_video, back_audio = read_media(path, frames=4, size=16)
    assert back_video.min() >= -1 and back_video.max() <= 1 and back_audio.abs().max() <= 1


@pytest.mark.parametrize("size,length,rate", [(64, 25600, 16000), (32, 4096, 2560)])
def test_preview_png(tmp_path, size, length, rate):
    video, audio = _clip(16, size, size, length, rate)
    path = write_preview(tmp_path / "p.png", video, audio, audio_rate=rate)
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 1000 <= width <= 2500 and 250 <= height <= 600, image.shape
    assert image[..., :3].std() > 0.05  # not blank
    assert list(tmp_path.iterdir()) == [path]
