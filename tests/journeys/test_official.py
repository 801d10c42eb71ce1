"""An original MM-Diffusion checkpoint at the released size, as a user brings it: converted with
README's command and sampled from (two steps on the release's time grid, batch 1), and used
directly for audio->video."""

from __future__ import annotations

import torch
from readme import readme_command, substitute
from safetensors import safe_open
from user_media import check_clips, mmfast

from mmfast.models.official import official_name


def test_convert_then_sample_at_the_released_size(release_checkpoint, tmp_path):
    convert = substitute(
        readme_command("convert-official", "landscape.pt"),
        {"landscape.pt": str(release_checkpoint)},
    )
    proc = mmfast(*convert, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "133,675,524 parameters" in proc.stdout
    converted = tmp_path / "landscape.safetensors"
    source = torch.load(release_checkpoint, weights_only=True, mmap=True)
    with safe_open(str(converted), framework="pt") as f:
        assert f.metadata()["format"] == "mmfast.CoupledUNet"
        names = list(f.keys())
        assert len(names) == 1046
        for name in names[:: len(names) // 25]:  # the weights moved, reshaped only by size-1 dims
            official, _ = official_name(name)
            assert torch.equal(f.get_tensor(name).reshape(-1), source[official].reshape(-1)), name

    line = readme_command("sample", "--checkpoint", "landscape.safetensors")
    proc = mmfast(*line, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_clips(tmp_path / "quick", 1, size=64)  # 16 kHz audio, 25600 samples: the release's


def test_audio_to_video_from_the_original_checkpoint(release_checkpoint, media, tmp_path):
    """README's audio->video line at the released size, one step; `replacement` stands in for
    `guided` here (a guided step at this size costs a backward pass, about 50 s on 2 cores; the
    guided path runs at the tiny size in test_train_and_sample.py)."""
    line = readme_command("sample", "--condition-audio")
    argv = substitute(
        line,
        {
            "landscape.pt": str(release_checkpoint),
            "waves.wav": str(media / "waves.wav"),
            "guided": "replacement",
        },
        ["--num", "1", "--batch-size", "1", "--steps", "1", "--sampler", "ddim"],
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_clips(tmp_path / "a2v", 1, size=64)
