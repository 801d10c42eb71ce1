"""README's `torchrun ... -m mmfast sample` on 2 gloo processes against one process: the same
files byte for byte (clip k is a function of (seed, k)), named by k, with the SR stage and
conditioning too; a rerun makes only what is missing."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers import he_init_
from readme import readme_torchrun, substitute
from user_media import mmfast

from mmfast.models import CoupledUNet, SuperResUNet, get_sr_config

CLIPS = 3


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "demo.safetensors"
    he_init_(CoupledUNet("demo"), seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def sr_file(tmp_path_factory):
    """An SR model for the demo preset's 16x16 frames (x4)."""
    path = tmp_path_factory.mktemp("sr") / "sr.safetensors"
    config = get_sr_config("tiny-sr", small_size=16, large_size=64)
    he_init_(SuperResUNet(config), seed=1).save(path)
    return path


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def test_two_processes_make_the_clips_of_one_and_a_rerun_makes_what_is_missing(
    model_file, tmp_path
):
    # Batches of one clip: a clip's arithmetic is then the same whatever else is being made
    # (batched convolutions may round differently), so the files compare byte for byte.
    extra = ["--batch-size", "1", "--steps", "2", "--no-progress"]
    line = readme_torchrun("sample", nproc=2)
    two = substitute(line, {"runs/landscape": str(model_file), "2048": str(CLIPS)}, extra)
    proc = subprocess.run(two, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(f"wrote {CLIPS} clips to samples") == 1  # rank 0 reports
    made = _files(tmp_path / "samples")
    assert sorted(made) == [f"sample_{k:03d}{e}" for k in range(CLIPS) for e in (".mp4", ".png")]

    one = two[two.index("mmfast") + 1 :]
    one[one.index("samples/")] = "one/"
    # torchrun runs each process on one thread; so does the single process here.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = mmfast(*one, cwd=tmp_path, env=env)
    assert single.returncode == 0, single.stderr
    assert _files(tmp_path / "one") == made
    assert made["sample_000.png"] != made["sample_001.png"]

    (tmp_path / "one" / "sample_001.png").unlink()  # a run killed while writing clip 1
    kept = (tmp_path / "one" / "sample_002.mp4").stat().st_mtime_ns
    again = mmfast(*one, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert f"wrote 1 clip to one ({CLIPS - 1} already there)" in again.stdout
    assert _files(tmp_path / "one") == made
    assert (tmp_path / "one" / "sample_002.mp4").stat().st_mtime_ns == kept


def test_sr_and_conditioning_split_over_two_processes_as_in_one(
    model_file, sr_file, media, tmp_path
):
    """Audio->video with the SR stage, 2 processes against 1: each clip's conditioning noise and
    SR noise are drawn from its own seed, so the split changes no file."""
    extra = ["--batch-size", "1", "--steps", "2", "--no-progress", "--sr", str(sr_file)]
    extra += ["--sr-steps", "2", "--condition-audio", str(media / "waves.wav")]
    line = readme_torchrun("sample", nproc=2)
    two = substitute(line, {"runs/landscape": str(model_file), "2048": str(CLIPS)}, extra)
    proc = subprocess.run(two, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    made = _files(tmp_path / "samples")
    names = [
        f"sample_{k:03d}{s}{e}" for k in range(CLIPS) for s in ("", "_sr") for e in (".mp4", ".png")
    ]
    assert sorted(made) == sorted(names)

    one = two[two.index("mmfast") + 1 :]
    one[one.index("samples/")] = "one/"
    single = mmfast(*one, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert single.returncode == 0, single.stderr
    assert _files(tmp_path / "one") == made
    assert made["sample_000_sr.png"] != made["sample_001_sr.png"]
