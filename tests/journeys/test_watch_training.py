"""Watching a run as README shows it: `mmfast train --tensorboard --sample-every N` on the user's
folder (the demo preset, 2 steps), then `mmfast plot RUN`."""

from __future__ import annotations

import pytest
from readme import readme_command, substitute
from user_media import mmfast


def test_tensorboard_previews_and_the_plot_of_a_run(media, tmp_path):
    pytest.importorskip("tensorboard")
    line = readme_command("train", "--tensorboard")
    argv = substitute(
        line,
        {"~/landscape": str(media / "landscape"), "mmdiffusion-64": "demo", "1000": "2"},
        ["--steps", "2", "--batch-size", "1", "--log-every", "1", "--workers", "0"],
    )
    proc = mmfast(*argv, "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs/landscape"
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    previews = sorted(p.name for p in (run / "previews").iterdir())
    assert previews == [f"step_0000002_{k}{s}" for k in (0, 1) for s in (".mp4", ".png")]

    plot = mmfast(*readme_command("plot"), cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote runs/landscape/loss.png" in plot.stdout

    missing = mmfast("plot", str(tmp_path), cwd=tmp_path)  # a folder without log.jsonl
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no log.jsonl" in missing.stderr
