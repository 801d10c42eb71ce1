"""README's super-resolution commands as a user runs them: `train-sr` on the user's folder (tiny-sr,
32 -> 128), `sample --sr` from the two run folders, `convert-official --sr`; outputs decoded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from readme import readme_command, substitute
from safetensors import safe_open
from user_media import check_clips, check_png, checkpoint_step, decode, log_steps, mmfast

from mmfast.models import SuperResUNet, get_sr_config, load_model
from mmfast.models.official_sr import to_official_sr_state_dict


@pytest.fixture(scope="module")
def sr_run(media, tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("user-sr")
    # fp16 -> bf16: CPUs have few fp16 kernels (this step ran 36x slower in fp16); the base
    # stage's journey runs README's fp16 line as it is.
    argv = substitute(
        readme_command("train-sr"),
        {"~/landscape": str(media / "landscape"), "sr-256": "tiny-sr", "fp16": "bf16"},
        ["--batch-size", "2", "--log-every", "1", "--workers", "1"],
    )
    first = mmfast(*argv, "--steps", "2", cwd=cwd)
    assert first.returncode == 0, first.stderr
    run = cwd / "runs/landscape-sr"
    for name in ("broken.mp4", "silent.mp4"):  # the same skips as the base stage's
        assert name in first.stderr
    resumed = mmfast(*argv, "--steps", "3", cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming runs/landscape-sr/checkpoint.safetensors at step 2" in resumed.stdout
    records = log_steps(run)
    assert [r["step"] for r in records] == [1, 2, 3] and {"mse", "vb"} <= set(records[0])
    assert checkpoint_step(run / "checkpoint.safetensors") == 3
    with safe_open(str(run / "checkpoint.safetensors"), framework="pt") as f:
        assert f.metadata()["model_format"] == "mmfast.SuperResUNet"
    assert "checkpoint: runs/landscape-sr/checkpoint.safetensors" in resumed.stdout
    return run


def test_train_sr_on_a_user_folder_resumes(sr_run):
    assert load_model(sr_run / "model-ema.safetensors", kind=SuperResUNet).config.large_size == 128


def test_sample_with_super_resolution(run_dir, sr_run, tmp_path):
    argv = substitute(
        readme_command("sample", "--sr"),
        {"runs/landscape": str(run_dir), "runs/landscape-sr": str(sr_run), "8": "1"},
        ["--steps", "2", "--sr-steps", "2"],
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "samples-256"
    check_clips(out, 1, sr=True)  # the 32x32 clip and its 128x128 upsampling
    d = decode(out / "sample_000_sr.mp4")
    assert (d.video_frames, d.width, d.height, d.audio_rate) == (16, 128, 128, 16000), d
    assert abs(d.audio_seconds - 1.6) <= 1024 / 16000
    check_png(out / "sample_000_sr.png")
    assert "clips: 100%" in proc.stderr and "1/1" in proc.stderr  # one bar: clips, SR included
    assert f"sample_NNN_sr.mp4 and .png in {out.name}" in proc.stdout


def test_sample_names_an_sr_model_of_the_wrong_size(run_dir, tmp_path):
    SuperResUNet(get_sr_config("tiny-sr", large_size=256, small_size=64)).save(
        tmp_path / "big.safetensors"
    )
    proc = mmfast(
        "sample", "--checkpoint", str(run_dir), "--sr", str(tmp_path / "big.safetensors"),
        "--out", "o", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "upsamples 64x64 frames; the base model makes 32x32" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_convert_an_original_sr_checkpoint(tmp_path):
    """README's line on a checkpoint in the release's SR layout (at the tiny size: the released
    size's layout and outputs are checked in tests/models/test_sr_model.py)."""
    torch.manual_seed(3)
    original = SuperResUNet("tiny-sr")
    torch.save(to_official_sr_state_dict(original), tmp_path / "tiny-sr.pt")
    argv = substitute(
        readme_command("convert-official", "--sr"),
        {"landscape-sr.pt": str(tmp_path / "tiny-sr.pt")},
        ["--preset", "tiny-sr"],
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SuperResUNet" in proc.stdout and "preset tiny-sr" in proc.stdout
    converted = load_model(tmp_path / "landscape-sr.safetensors", kind=SuperResUNet)
    for (k, a), b in zip(converted.state_dict().items(), original.state_dict().values()):
        assert torch.equal(a, b), k
