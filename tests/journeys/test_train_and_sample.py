"""README's training and sampling commands, run as a user runs them: `python -m mmfast ...` (and
torchrun) in a subprocess, on a data folder shaped as users have them, at the tiny size; every
output decoded."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from readme import readme_command, substitute
from safetensors import safe_open
from user_media import check_clips, checkpoint_step, mmfast


def test_train_on_a_user_folder_resumes(run_dir):
    assert (run_dir / "model-ema.safetensors").is_file()


def test_torchrun_two_processes_on_a_user_folder(media, tmp_path):
    line = readme_command("train", launcher="torchrun")
    argv = substitute(line, {"~/landscape": str(media / "landscape"), "mmdiffusion-64": "tiny"})
    argv += ["--steps", "2", "--batch-size", "1", "--log-every", "1", "--workers", "0"]
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = (
        [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    )
    proc = subprocess.run(
        [*launcher, "--nproc_per_node", "2", "-m", "mmfast", *argv, "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs/landscape"
    assert checkpoint_step(run / "checkpoint.safetensors") == 2
    with safe_open(str(run / "checkpoint.safetensors"), framework="pt") as f:
        assert f.metadata()["world_size"] == "2"
    assert proc.stdout.count("checkpoint: runs/landscape/checkpoint.safetensors") == 1  # rank 0


def test_sample_from_the_run_folder(run_dir, tmp_path):
    line = readme_command("sample", "--sampler", "dpm-solver")
    argv = substitute(
        line,
        {"runs/landscape": str(run_dir), "8": "3"},
        ["--batch-size", "2", "--steps", "3"],
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_clips(tmp_path / "samples", 3)
    assert "wrote 3 clips to samples" in proc.stdout
    assert "3/3" in proc.stderr  # clips done, as the progress bar shows them


def test_sample_under_bf16_autocast_is_the_fp32_run_within_rounding(run_dir, tmp_path):
    """README's --precision line: the same clips as fp32 from the same seed, up to bf16 rounding
    (compared on the lossless PNG previews), and not the very same pixels (autocast was on)."""
    line = readme_command("sample", "--precision")
    argv = substitute(line, {"runs/landscape": str(run_dir), "8": "2"}, ["--steps", "3"])
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_clips(tmp_path / "samples-bf16", 2)
    fp32 = substitute(argv, {"bf16": "fp32", "samples-bf16/": "samples-fp32/"})
    assert mmfast(*fp32, cwd=tmp_path).returncode == 0
    for k in range(2):
        png = f"sample_{k:03d}.png"
        half = plt.imread(tmp_path / "samples-bf16" / png)
        full = plt.imread(tmp_path / "samples-fp32" / png)
        assert half.shape == full.shape
        assert 0 < np.abs(half - full).mean() < 0.02, np.abs(half - full).mean()


def test_release_respacing_run_from_the_run_folder(run_dir, tmp_path):
    """README's release DDPM line: a respacing string (here "10" for "50") in the release's
    noise order."""
    line = readme_command("sample", "--noise-order")
    argv = substitute(line, {"runs/landscape": str(run_dir), "50": "10"}, ["--batch-size", "2"])
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_clips(tmp_path / "release-50", 2)


def test_video_to_audio_from_an_mp4(run_dir, media, tmp_path):
    line = readme_command("sample", "--condition-video")
    argv = substitute(
        line,
        {
            "runs/landscape/model-ema.safetensors": str(run_dir / "model-ema.safetensors"),
            "street.mp4": str(media / "street.mp4"),
        },
        ["--num", "1", "--steps", "2", "--guidance-scale", "10"],
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_clips(tmp_path / "v2a", 1)


@pytest.mark.parametrize("given", ["waves.wav", "street.mp4"])
def test_audio_to_video_from_a_wav_or_an_mp4(run_dir, media, tmp_path, given):
    """README's audio->video line with the tiny run's checkpoint file for the original one (the
    released size runs in test_official.py)."""
    line = readme_command("sample", "--condition-audio")
    argv = substitute(
        line,
        {"landscape.pt": str(run_dir / "checkpoint.safetensors"), "waves.wav": str(media / given)},
        ["--num", "1", "--steps", "2", "--start", "0.3", "--guidance-scale", "10"],
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_clips(tmp_path / "a2v", 1)


def test_a_time_bounded_run_shows_elapsed_and_remaining_time(tmp_path):
    proc = mmfast(
        "train", "--out", "run", "--minutes", "0.05", "--batch-size", "1", "--log-every", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("train: 100%") and "elapsed" in last and "left" in last, last
    assert "/20000" in last and "step 0/20000" not in last, last
    assert "checkpoint: run/checkpoint.safetensors" in proc.stdout
    shutil.rmtree(tmp_path / "run")
