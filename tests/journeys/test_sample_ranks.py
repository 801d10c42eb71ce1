"""README's `torchrun ... -m mmfast sample` on 2 gloo processes against one process: the same
files byte for byte (clip k is a function of (seed, k)), named by k; a rerun makes only what is
missing."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers import he_init_
from readme import readme_torchrun, substitute
from user_media import mmfast

from mmfast.models import CoupledUNet

CLIPS = 3


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "demo.safetensors"
    he_init_(CoupledUNet("demo"), seed=0).save(path)
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
    assert f"wrote 1 clips to one ({CLIPS - 1} already there)" in again.stdout
    assert _files(tmp_path / "one") == made
    assert (tmp_path / "one" / "sample_002.mp4").stat().st_mtime_ns == kept
