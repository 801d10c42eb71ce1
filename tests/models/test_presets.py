"""The paper's AudioSet preset: the release's coupled U-Net at base width 256, nothing else changed,
and the parameter count README states, counted on the meta device (no memory)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from mmfast.models import CoupledUNet, get_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_audioset_preset_is_the_release_at_base_width_256():
    release, audioset = get_config("mmdiffusion-64"), get_config("mmdiffusion-audioset")
    changed = {
        f.name
        for f in dataclasses.fields(release)
        if getattr(release, f.name) != getattr(audioset, f.name)
    }
    assert changed == {"model_channels"} and audioset.model_channels == 256


def test_audioset_parameter_count_is_the_one_readme_states():
    with torch.device("meta"):
        model = CoupledUNet("mmdiffusion-audioset")
    count = sum(p.numel() for p in model.parameters())
    stated = re.search(r"`mmdiffusion-audioset`[^.]*?([\d,]{9,}) parameters", README.read_text())
    assert stated, "README should state the mmdiffusion-audioset preset's parameter count"
    assert int(stated.group(1).replace(",", "")) == count
