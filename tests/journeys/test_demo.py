"""README's `mmfast demo` line, with a short training time: it trains, samples, writes the clips
and prints the scores, and a rerun continues the run."""

from __future__ import annotations

from pathlib import Path

from readme import readme_command, substitute
from user_media import check_png, decode, mmfast

SHORT = ["--minutes", "0.05", "--num", "2", "--steps", "2"]


def _check_outputs(proc, out: Path) -> None:
    assert proc.returncode == 0, proc.stderr
    for i in range(2):
        d = decode(out / f"sample_{i:02d}.mp4")
        assert (d.video_frames, d.width, d.height, d.audio_rate) == (8, 16, 16, 16000), d
        assert abs(d.audio_seconds - 0.8) <= 1024 / 16000
        check_png(out / f"sample_{i:02d}.png")
    for row in ("generated", "real", "shuffled", "noise"):
        assert f"  {row:<10} sync " in proc.stdout, proc.stdout
    assert "background" in proc.stdout and "one ball" in proc.stdout
    assert (out / "run" / "checkpoint.safetensors").is_file()


def test_demo_trains_samples_writes_and_scores(tmp_path):
    argv = substitute(readme_command("demo"), {}, SHORT)
    proc = mmfast(*argv, cwd=tmp_path)
    _check_outputs(proc, tmp_path / "mmfast-demo")
    assert "outputs: mmfast-demo" in proc.stdout and "demo took" in proc.stdout
    # The real pairs score near 1 and the mismatched ones far below.
    real = float(proc.stdout.split("  real       sync ")[1].split()[0])
    shuffled = float(proc.stdout.split("  shuffled   sync ")[1].split()[0])
    assert real > 0.9 and shuffled < 0.5, proc.stdout
    # A rerun continues the same run.
    again = mmfast(*argv, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming mmfast-demo/run/checkpoint.safetensors" in again.stdout
