"""VideoFolderDataset: the clip index and its cache, broken files, flips and the two resize modes."""

from __future__ import annotations

import json
import os
import pickle
import warnings

import pytest
import torch
from media_samples import grey, write_av

from mmfast.data import MediaWarning, VideoFolderDataset


def _build(root, **kwargs) -> tuple[VideoFolderDataset, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = VideoFolderDataset(root, size=32, **kwargs)
    return dataset, [str(w.message) for w in caught if issubclass(w.category, MediaWarning)]


@pytest.fixture
def good_folder(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    write_av(root / "a" / "one.mp4", fps=25, seconds=3.3)
    write_av(root / "two.mkv", fps=30, seconds=1.7, acodec="pcm_s16le")
    return root


def test_index_is_cached_outside_the_data_folder_and_reused(good_folder, tmp_path):
    index = tmp_path / "run" / "clips.json"
    first, warned = _build(good_folder, index_path=index)
    assert (len(first), first.probed, warned) == (3, 2, [])
    assert index.is_file()
    assert not any(p.suffix == ".json" for p in good_folder.rglob("*"))
    assert {f["path"] for f in json.loads(index.read_text())["files"]} == {"a/one.mp4", "two.mkv"}

    again, _ = _build(good_folder, index_path=index)
    assert (len(again), again.probed) == (3, 0)  # every file served by the cache
    torch.testing.assert_close(again[2], first[2])

    os.utime(good_folder / "two.mkv", ns=(1, 1))  # touched: new mtime, same size
    touched, _ = _build(good_folder, index_path=index)
    assert (len(touched), touched.probed) == (3, 1)

    write_av(
        good_folder / "a" / "three.webm",
        fps=24,
        seconds=1.7,
        vcodec="libvpx-vp9",
        acodec="libopus",
        audio_rate=48000,
    )
    grown, _ = _build(good_folder, index_path=index)
    assert (len(grown), grown.probed) == (4, 1)

    (good_folder / "a" / "one.mp4").unlink()
    shrunk, _ = _build(good_folder, index_path=index)
    assert (len(shrunk), shrunk.probed) == (2, 0)


def test_other_clip_settings_or_a_corrupt_cache_rebuild_the_index(good_folder, tmp_path):
    index = tmp_path / "clips.json"
    _build(good_folder, index_path=index)
    longer, _ = _build(good_folder, index_path=index, frames=8, fps=5.0)  # 1.6 s, same clips
    assert longer.probed == 0
    other, _ = _build(good_folder, index_path=index, frames=8)  # 0.8 s clips: probe again
    assert (other.probed, len(other)) == (2, 6)
    index.write_text("{ not json")
    rebuilt, _ = _build(good_folder, index_path=index)
    assert (rebuilt.probed, len(rebuilt)) == (2, 3)
    assert json.loads(index.read_text())["files"]


def test_unusable_files_are_skipped_with_one_warning_and_counted(good_folder, tmp_path):
    write_av(good_folder / "silent.mp4", fps=25, seconds=2.0, audio_rate=None)
    write_av(good_folder / "brief.mp4", fps=25, seconds=1.0)
    (good_folder / "notes.mkv").write_text("not a video\n" * 50)
    (good_folder / "empty.avi").write_bytes(b"")
    (good_folder / "readme.txt").write_text("ignored: not a video extension")
    whole = write_av(tmp_path / "whole.mp4", fps=25, seconds=3.3)
    (good_folder / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    dataset, warned = _build(good_folder, index_path=tmp_path / "clips.json")
    assert len(dataset) == 3  # the good files' clips only
    reasons = {os.path.basename(p): why for p, why in dataset.skipped.items()}
    assert set(reasons) == {"silent.mp4", "brief.mp4", "notes.mkv", "empty.avi", "cut.mp4"}
    assert reasons["silent.mp4"] == "no audio stream"
    assert "shorter than one clip" in reasons["brief.mp4"]
    assert "cannot open" in reasons["notes.mkv"] and "cannot open" in reasons["cut.mp4"]
    assert len(warned) == 1 and "skipped 5 of 7 files" in warned[0]
    # The cache remembers why, and says so again without probing.
    again, warned_again = _build(good_folder, index_path=tmp_path / "clips.json")
    assert (again.probed, again.skipped, len(warned_again)) == (0, dataset.skipped, 1)


def test_a_file_cut_after_its_header_yields_the_clips_it_still_holds(tmp_path):
    whole = write_av(tmp_path / "whole.mp4", fps=25, seconds=5.0, faststart=True)
    root = tmp_path / "data"
    root.mkdir()
    (root / "cut.mp4").write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    dataset, warned = _build(root)
    assert (len(dataset), warned) == (1, [])  # ~2.9 s survive: one whole clip
    video, audio = dataset[0]
    assert video.shape == (16, 3, 32, 32) and audio.shape == (1, 25600)


@pytest.mark.parametrize("damage", ["index-lost", "data-cut"])
def test_a_file_that_breaks_during_the_run_is_replaced_by_the_next_good_clip(tmp_path, damage):
    root = tmp_path / "data"
    root.mkdir()
    # Damaged after indexing: "index-lost" cuts the mp4's sample table (written last) away, so
    # the file no longer opens; "data-cut" keeps the table (written first) but loses the second
    # half of the samples, so the file opens and its second clip fails half-way.
    path = write_av(root / "one.mp4", fps=25, seconds=3.3, faststart=damage == "data-cut")
    write_av(root / "two.mkv", fps=30, seconds=1.7, acodec="pcm_s16le")
    dataset, _ = _build(root)
    assert len(dataset) == 3  # one.mp4: clips 0, 1; two.mkv: clip 2
    expected = dataset[2]
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: 3000 if damage == "index-lost" else size // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            for i in (1, 0):
                torch.testing.assert_close(dataset[i], expected)
    broken = [str(w.message) for w in caught if issubclass(w.category, MediaWarning)]
    assert len(broken) == 1 and "one.mp4" in broken[0], broken
    assert "during the run" in dataset.skipped[str(path)]
    assert len(dataset) == 3  # samplers keep their length

    (root / "two.mkv").write_bytes(b"gone")
    with pytest.raises(RuntimeError, match="no clip under"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset[0]


def test_empty_or_unusable_folders_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VideoFolderDataset(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    with pytest.raises(ValueError, match=r"no video files .* under .*empty"):
        VideoFolderDataset(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.mp4").write_text("not a video")
    with pytest.raises(ValueError, match=r"no usable video file under .*broken.*x\.mp4"):
        VideoFolderDataset(broken)


@pytest.fixture
def wide_folder(tmp_path):
    """One 64x32 file whose left quarter is white."""
    root = tmp_path / "wide"
    root.mkdir()
    write_av(root / "wide.mp4", fps=25, seconds=1.7, width=64, height=32, mark_left=True)
    return root


def test_letterbox_pads_and_center_crop_cuts(wide_folder):
    box, _ = VideoFolderDataset(wide_folder, size=32, resize="letterbox")[0]
    crop, _ = VideoFolderDataset(wide_folder, size=32, resize="center-crop")[0]
    level = torch.tensor(grey(0) / 127.5 - 1)
    # Letterbox: the whole 64x32 picture scaled to 32x16, black bars of 8 rows above and below.
    assert torch.all(box[0, :, :8] == -1) and torch.all(box[0, :, 24:] == -1)
    assert torch.allclose(box[0, :, 9:23, :7], torch.tensor(1.0), atol=0.03)  # the white mark
    assert torch.allclose(box[0, :, 9:23, 9:], level, atol=0.03)
    # Centre crop: the middle 32x32 of the source; the mark is cut away, no bars.
    assert torch.allclose(crop[0], level, atol=0.03)


def test_flip_is_drawn_from_the_generator_and_spares_the_sound(wide_folder):
    dataset = VideoFolderDataset(wide_folder, size=32, hflip_p=0.5)
    plain_video, plain_audio = dataset[0]
    assert plain_video[0, 0, 16, 2] > 0.9 and plain_video[0, 0, 16, 29] < 0  # mark on the left
    flipped = []
    for seed in range(16):
        video, audio = dataset.get(0, generator=torch.Generator().manual_seed(seed))
        again, _ = dataset.get(0, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(video, again)  # same seed, same draw
        torch.testing.assert_close(audio, plain_audio)
        if torch.equal(video, plain_video.flip(-1)):
            flipped.append(seed)
        else:
            torch.testing.assert_close(video, plain_video)
    assert 3 <= len(flipped) <= 13  # p = 0.5 over 16 seeds
    always = VideoFolderDataset(wide_folder, size=32, hflip_p=1.0)
    torch.testing.assert_close(always.get(0, torch.Generator())[0], plain_video.flip(-1))
    torch.testing.assert_close(always[0][0], plain_video)  # no generator, no flip


def test_the_dataset_pickles_for_loader_workers(good_folder):
    dataset, _ = _build(good_folder)
    copy = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(copy[1], dataset[1])


def test_loader_workers_batch_the_clips(good_folder):
    dataset, _ = _build(good_folder)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2)
    ((video, audio),) = list(loader)
    assert video.shape == (3, 16, 3, 32, 32) and audio.shape == (3, 1, 25600)
    torch.testing.assert_close(video[2], dataset[2][0])
