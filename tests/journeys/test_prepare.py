"""README's `mmfast prepare` lines, run as a user runs them (tiny preset) on the user's folder: the
store holds the folder dataset's clips, a rerun decodes nothing, torchrun's two processes (gloo)
make the store one process makes, and `mmfast train --data STORE` trains from it."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from readme import readme_command, substitute
from user_media import checkpoint_step, mmfast

from mmfast.cli import main
from mmfast.data import ClipStore, VideoFolderDataset


@pytest.fixture(scope="module")
def store(media, tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("prepare")
    line = readme_command("prepare")
    argv = substitute(
        line,
        {
            "~/landscape": str(media / "landscape"),
            "~/landscape-64": "landscape-tiny",
            "mmdiffusion-64": "tiny",
            "16": "1",  # one decoding process: the pool's path
        },
    )
    first = mmfast(*argv, cwd=cwd)
    assert first.returncode == 0, first.stderr
    assert "6 clips decoded from 8 of 8 files" in first.stdout
    assert "already" not in first.stdout
    assert "index written: 6 clips of 16 frames at 10 fps, 32x32, 4096 samples" in first.stdout
    for name in ("broken.mp4", "silent.mp4", "short.mp4"):  # named once, skipped
        assert name in first.stderr
    assert "6/6" in first.stderr  # the progress bar's clips
    again = mmfast(*argv, cwd=cwd)
    assert again.returncode == 0 and "0 clips decoded from 0 of 8 files" in again.stdout
    assert "the other 8 were in the store already" in again.stdout
    return cwd / "landscape-tiny"


def test_the_store_holds_the_folder_datasets_clips(store, media):
    clips = ClipStore(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = VideoFolderDataset(media / "landscape", size=32, audio_rate=2560)
    assert len(clips) == len(folder) == 6
    for i in range(6):
        assert torch.equal(clips[i][0], folder[i][0])
        assert (clips[i][1] - folder[i][1]).abs().max() <= 0.5 / 32767 + 1e-6
    assert set(clips.skipped) == {"broken.mp4", "short.mp4", "silent.mp4"}


def test_torchrun_two_processes_make_the_store_one_makes(store, media, tmp_path):
    line = readme_command("prepare", launcher="torchrun")
    argv = substitute(
        line,
        {
            "~/landscape": str(media / "landscape"),
            "~/landscape-64": "split",
            "mmdiffusion-64": "tiny",
        },
        ["--workers", "0", "--no-progress"],
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = (
        [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    )
    proc = subprocess.run(
        [*launcher, "--nproc_per_node", "2", "-m", "mmfast", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("index written: 6 clips") == 1  # rank 0 writes and reports
    shards = sorted(p.name for p in (tmp_path / "split" / "shards").iterdir())
    assert [s[:14] for s in shards] == ["00000-of-00002", "00001-of-00002"]  # one per rank
    one, two = ClipStore(store), ClipStore(tmp_path / "split")
    assert len(one) == len(two) and one.skipped == two.skipped

    def facts(path):
        files = json.loads((path / "index.json").read_text())["files"]
        return [{k: v for k, v in f.items() if k not in ("shard", "row")} for f in files]

    assert facts(store) == facts(tmp_path / "split")
    for i in range(len(one)):
        assert all(torch.equal(a, b) for a, b in zip(one.get_raw(i), two.get_raw(i)))


def test_train_from_the_store(store, tmp_path):
    line = readme_command("train", "~/landscape-64")
    argv = substitute(
        line,
        {"~/landscape-64": str(store), "mmdiffusion-64": "tiny", "4": "1"},
        ["--steps", "1", "--batch-size", "1", "--no-progress"],
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "decoding the videos while training" not in proc.stderr  # said only for a folder
    assert checkpoint_step(tmp_path / "runs/landscape/checkpoint.safetensors") == 1
    config = json.loads((tmp_path / "runs/landscape/train_config.json").read_text())
    assert config["data"] == str(store) and config["num_workers"] == 1


def test_bad_input_is_one_line(store, media, tmp_path, capsys):
    folder = str(media / "landscape")
    cases = [
        (["train", "--data", str(store), "--preset", "demo", "--out", str(tmp_path / "r")],
         f"--data {store}: {store} holds clips of 16 frames at 10 fps, 32x32"),
        (["prepare", "--data", folder, "--out", str(store), "--preset", "demo"],
         f"--out {store} holds clips with frames 16 (not 8)"),
        (["prepare", "--data", folder, "--out", str(tmp_path / "s"), "--preset", "tiny", "--size", "8"],
         "--preset tiny: give either a preset or --size"),
        (["prepare", "--data", folder, "--out", str(tmp_path / "s"), "--shard", "2/2"],
         "--shard 2/2: expected 0 <= I < N"),
        (["prepare", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s")],
         "--data"),
        (["prepare", "--data", folder, "--out", str(tmp_path / "s"), "--preset", "nope"],
         "--preset nope: expected one of"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    assert not (tmp_path / "s" / "index.json").exists()
    assert not list((tmp_path / "r").iterdir())  # the run folder was made, nothing put in it
