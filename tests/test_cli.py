"""Smoke runs of the `mmfast` command at tiny sizes: train, resume, sample (plain and
conditioned), demo, convert errors. In-process through `mmfast.cli.main`."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import pytest
import torch

from mmfast.cli import main

FAST = ["--no-progress", "--batch-size", "1", "--log-every", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), "--preset", "tiny", "--steps", "2", *FAST]) == 0
    return out


def test_train_writes_a_checkpoint_and_resumes(run_dir, capsys):
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert (run_dir / "checkpoint.safetensors").is_file() and (
        run_dir / "model-ema.safetensors"
    ).is_file()
    assert main(["train", "--out", str(run_dir), "--preset", "tiny", "--steps", "3", *FAST]) == 0
    assert "stopped at step 3" in capsys.readouterr().out
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]  # continued, not restarted


def _decoded(path):
    with av.open(str(path)) as f:
        frames = sum(1 for _ in f.decode(video=0))
    with av.open(str(path)) as f:
        rate = f.streams.audio[0].rate
    return frames, rate


def test_sample_writes_mp4_and_png(run_dir, tmp_path):
    out = tmp_path / "samples"
    args = [
        "sample",
        "--checkpoint",
        str(run_dir / "checkpoint.safetensors"),
        "--num",
        "2",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    for i in range(2):
        assert (out / f"sample_{i:03d}.png").stat().st_size > 1000
        frames, rate = _decoded(out / f"sample_{i:03d}.mp4")
        assert frames == 16 and rate == 16000


@pytest.mark.parametrize(
    "flag,method", [("--condition-audio", "replacement"), ("--condition-video", "guided")]
)
def test_sample_conditioned_on_a_file(run_dir, tmp_path, flag, method):
    from mmfast.data import SyntheticAVDataset, write_clip

    video, audio = SyntheticAVDataset(1, frames=16, size=32, audio_length=4096, fps=10.0, seed=5)[0]
    given = tmp_path / "given.mp4"
    write_clip(given, video, audio, fps=10.0, audio_rate=2560.0)
    out = tmp_path / "cond"
    args = [
        "sample",
        "--checkpoint",
        str(run_dir / "model-ema.safetensors"),
        "--num",
        "1",
        "--steps",
        "2",
        flag,
        str(given),
        "--guidance",
        method,
        "--guidance-scale",
        "1.0",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert (out / "sample_000.mp4").is_file()


def test_demo_prints_sync_scores(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--minutes",
                "0.02",
                "--num",
                "1",
                "--steps",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    for name in ("generated", "real", "shuffled"):
        assert name in text
    assert (out / "sample_00.mp4").is_file() and (out / "sample_00.png").is_file()


def test_errors_exit_with_a_message(tmp_path, capsys):
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(tmp_path / "missing.safetensors"),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    torch.save({"x": torch.zeros(1)}, bad)
    assert main(["convert-official", str(bad), str(tmp_path / "x.safetensors")]) == 2
    assert "missing tensor" in capsys.readouterr().err


def test_python_dash_m_works():
    proc = subprocess.run(
        [sys.executable, "-m", "mmfast", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "demo" in proc.stdout and "convert-official" in proc.stdout
