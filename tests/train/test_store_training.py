"""Training from a clip store: the trainer recognises it, checks its clips against the preset,
reads it through loader workers, and a stopped and resumed run reaches the same weights."""

from __future__ import annotations

import warnings

import pytest
import torch
from fake_clips import SMALL_MODEL
from safetensors.torch import load_file

from mmfast.data import ClipStore, MediaWarning, prepare, write_clip
from mmfast.train import get_train_config, train
from mmfast.train.trainer import build_dataset

# SMALL_MODEL's clip: 8 frames of 16x16 at 10 fps with 512 samples, i.e. sound at 640 Hz.
CLIP = dict(frames=8, fps=10.0, size=16, audio_rate=640)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    g = torch.Generator().manual_seed(0)
    for n in range(3):  # 2.4 s each: 3 clips of 0.8 s
        video = torch.rand(24, 3, 32, 32, generator=g) * 2 - 1
        audio = torch.sin(torch.arange(38400) * (0.05 + 0.02 * n))[None] * 0.5
        write_clip(root / f"v{n}.mp4", video, audio, fps=10, audio_rate=16000)
    out = tmp_path_factory.mktemp("store")
    prepare(root, out, progress=False, **CLIP)
    return out, root


def _config(data, **kw):
    base = dict(
        model_overrides=SMALL_MODEL, steps=2, batch_size=2, log_every=1, checkpoint_every=1,
        lr=1e-3, hflip_p=0.5, data=str(data), num_workers=2,
    )  # fmt: skip
    base.update(kw)
    return get_train_config("tiny", **base)


def test_a_store_is_recognised_and_checked_against_the_preset(store, tmp_path):
    out, root = store
    config = _config(out)
    dataset = build_dataset(config, config.model_config(), tmp_path)
    assert isinstance(dataset, ClipStore) and len(dataset) == 9 and dataset.hflip_p == 0.5
    wrong = _config(
        out, model_overrides=(("video_frames", 16), ("video_size", 16), ("audio_length", 1024))
    )
    with pytest.raises(
        ValueError, match=r"holds clips of 8 frames .* trains on 16 frames .* --preset tiny"
    ):
        build_dataset(wrong, wrong.model_config(), tmp_path)
    with pytest.warns(MediaWarning, match=r"mmfast prepare --data .* --out STORE --preset tiny"):
        folder = build_dataset(_config(root), config.model_config(), tmp_path)
    assert len(folder) == 9
    (tmp_path / "empty").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MediaWarning)  # no advice to prepare a folder of nothing
        with pytest.raises(ValueError, match="no video files"):
            build_dataset(_config(tmp_path / "empty"), config.model_config(), tmp_path)


def test_the_sr_stage_reads_a_store_of_its_own(store, tmp_path):
    """train-sr: one large frame a clip, bicubic-scaled: the base stage's store is refused."""
    out, root = store
    sr = get_train_config(
        "tiny-sr", data=str(out), model_overrides=(("large_size", 32), ("small_size", 8))
    )
    with pytest.raises(
        ValueError,
        match=r"holds clips of 8 frames .* \(letterbox, area scaling\).* trains on 1 frames",
    ):
        build_dataset(sr, sr.model_config(), tmp_path)
    prepare(
        root,
        tmp_path / "sr",
        frames=1,
        size=32,
        audio_rate=16000,
        interpolation="bicubic",
        progress=False,
    )
    frames = build_dataset(sr.replace(data=str(tmp_path / "sr")), sr.model_config(), tmp_path)
    assert isinstance(frames.clips, ClipStore) and len(frames) == 3 * 24
    high, low = frames.get(5, torch.Generator().manual_seed(0))
    assert high.shape == (3, 32, 32) and low.shape == (3, 8, 8)
    assert torch.equal(high, frames.clips[5][0][0])


def test_training_from_a_store_resumes_to_the_same_weights(store, tmp_path):
    """2 loader workers, flips drawn at load: 2 steps in one go == 1, stop, resume to 2."""
    config = _config(store[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", MediaWarning)  # a store needs no note
        full = train(config, tmp_path / "full", progress=False, device_type="cpu")
        train(config, tmp_path / "cut", progress=False, device_type="cpu", stop_at=1)
        resumed = train(config, tmp_path / "cut", progress=False, device_type="cpu")
    assert full.step == resumed.step == 2
    a, b = load_file(str(full.checkpoint)), load_file(str(resumed.checkpoint))
    assert set(a) == set(b)
    for k in a:
        if not k.startswith("rng."):
            assert torch.equal(a[k], b[k]), k
