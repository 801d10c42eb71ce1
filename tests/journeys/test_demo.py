"""README's `mmfast demo` lines: from scratch with a short training time, and continuing from the
committed checkpoint trained by `mmfast train`."""

from __future__ import annotations

from pathlib import Path

from readme import readme_command, substitute
from user_media import check_png, decode, mmfast

from mmfast.train.checkpoint import read_metadata

ROOT = Path(__file__).resolve().parents[2]
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
    argv = substitute(readme_command("demo", without=("--start-from",)), {}, SHORT)
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


def test_demo_continues_the_committed_checkpoint(tmp_path):
    line = readme_command("demo", "--start-from")
    committed = ROOT / line[line.index("--start-from") + 1]
    checkpoint = committed / "checkpoint.safetensors"
    assert checkpoint.stat().st_size < 10 * 2**20
    step = int(read_metadata(checkpoint)["step"])
    assert step > 1000  # a trained run, not a stub
    argv = substitute(line, {line[line.index("--start-from") + 1]: str(committed)}, SHORT)
    proc = mmfast(*argv, cwd=tmp_path)
    out = tmp_path / argv[argv.index("--out") + 1]
    _check_outputs(proc, out)
    assert f"resuming {out.relative_to(tmp_path)}/run/checkpoint.safetensors at step {step}" in (
        proc.stdout
    )
    assert int(read_metadata(out / "run" / "checkpoint.safetensors")["step"]) > step
    # A second --start-from into the same folder would overwrite that run: refused.
    again = mmfast(*argv, cwd=tmp_path)
    assert again.returncode != 0 and "--start-from" in again.stderr
