"""README's first command: `mmfast demo`, with a short training time."""

from __future__ import annotations

from readme import readme_command, substitute
from user_media import check_png, decode, mmfast


def test_demo_trains_samples_writes_and_scores(tmp_path):
    argv = substitute(
        readme_command("demo"), {}, ["--minutes", "0.05", "--num", "2", "--steps", "2"]
    )
    proc = mmfast(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "mmfast-demo"
    for i in range(2):
        d = decode(out / f"sample_{i:02d}.mp4")
        assert (d.video_frames, d.width, d.height, d.audio_rate) == (16, 32, 32, 16000), d
        assert abs(d.audio_seconds - 1.6) <= 1024 / 16000
        check_png(out / f"sample_{i:02d}.png")
    for row in ("generated", "real", "shuffled"):
        assert f"  {row}" in proc.stdout
    assert "outputs: mmfast-demo" in proc.stdout
    assert (out / "run" / "checkpoint.safetensors").is_file()
    # A rerun continues the same run.
    again = mmfast(*argv, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming mmfast-demo/run/checkpoint.safetensors" in again.stdout
