"""Fixtures of the journeys: files written by the tests themselves, shared across a session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import REFERENCE_DIR
from readme import readme_command, substitute
from user_media import checkpoint_step, log_steps, mmfast, user_folder, write_video, write_wav


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """A user's data folder (see `user_media.user_folder`) and, beside it, conditioning files."""
    root = tmp_path_factory.mktemp("media")
    user_folder(root / "landscape")
    write_wav(root / "waves.wav", seconds=2.5, rate=22050, channels=2)
    write_video(root / "street.mp4", seconds=2.0, fps=25, audio_rate=48000, channels=2)
    write_video(root / "no_sound.mp4", seconds=2.0, fps=25, audio_rate=None)
    write_wav(root / "blip.wav", seconds=0.5)
    return root


@pytest.fixture(scope="session")
def release_checkpoint(tmp_path_factory) -> Path:
    """A .pt file laid out as an original MM-Diffusion checkpoint (the release's 1046 tensor names
    and shapes, 133,675,524 parameters), with small random weights."""
    layout = json.loads((REFERENCE_DIR / "official_params.json").read_text())["state_dict"]
    g = torch.Generator().manual_seed(7)
    sd = {e["name"]: torch.randn(e["shape"], generator=g) * 0.02 for e in layout}
    path = tmp_path_factory.mktemp("release") / "landscape.pt"
    torch.save(sd, path)
    return path


SMALL = ["--batch-size", "1", "--log-every", "1", "--workers", "1"]


@pytest.fixture(scope="session")
def run_dir(media, tmp_path_factory) -> Path:
    """README's training line on the user's folder (tiny preset, 2 steps), then resumed to 3."""
    cwd = tmp_path_factory.mktemp("user")
    line = readme_command("train", "--precision", "fp16")
    argv = substitute(
        line, {"~/landscape": str(media / "landscape"), "mmdiffusion-64": "tiny"}, SMALL
    )
    first = mmfast(*argv, "--steps", "2", cwd=cwd)
    assert first.returncode == 0, first.stderr
    run = cwd / "runs/landscape"
    assert [r["step"] for r in log_steps(run)] == [1, 2]
    # The user's bad files are named once, and the run goes on.
    for name in ("broken.mp4", "silent.mp4", "short.mp4"):
        assert name in first.stderr
    assert "checkpoint: runs/landscape/checkpoint.safetensors" in first.stdout
    assert checkpoint_step(run / "checkpoint.safetensors") == 2
    index = json.loads((run / "clip_index.json").read_text())
    assert len(index["files"]) == 8  # every video file, usable or not; .txt and .jpg ignored
    assert not list((media / "landscape").rglob("*.json"))  # nothing written into the data

    resumed = mmfast(*argv, "--steps", "3", cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming runs/landscape/checkpoint.safetensors at step 2" in resumed.stdout
    assert [r["step"] for r in log_steps(run)] == [1, 2, 3]
    assert checkpoint_step(run / "checkpoint.safetensors") == 3
    config = json.loads((run / "train_config.json").read_text())
    assert config["precision"] == "fp16" and config["data"] == str(media / "landscape")
    return run
