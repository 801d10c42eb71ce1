"""Fixtures of the journeys: files written by the tests themselves, shared across a session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import REFERENCE_DIR
from user_media import user_folder, write_video, write_wav


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
