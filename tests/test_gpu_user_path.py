"""The GPU check's user-path stage (benchmarks/gpu_user_path.py) on the CPU at the small presets:
each part runs through the public API and writes its record; on the GPU the same code runs at the
released size (mmdiffusion-64, sr-256), compiled too."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_user_path  # noqa: E402


@pytest.mark.slow
def test_user_path_records_every_part(tmp_path):
    results = tmp_path / "user_path.jsonl"
    argv = [str(results), "--preset", "demo", "--sr-preset", "tiny-sr", "--steps", "2"]
    argv += ["--batch", "2", "--sample-steps", "2", "--precisions", "bf16", "--no-compile"]
    assert gpu_user_path.main(argv) == 0
    records = [json.loads(line) for line in results.read_text().splitlines()]
    by_what = {}
    for r in records:
        by_what.setdefault(r["what"], []).append(r)
    assert by_what["device"][0]["device"] == "cpu"
    (train,) = by_what["train"]
    assert train["ok"] and train["steps"] == 2 and len(train["losses"]) == 2
    assert train["precision"] == "bf16" and train["samples_per_s"] > 0
    samples = by_what["sample"]
    assert [s["precision"] for s in samples] == ["fp32", "bf16"]
    assert all(s["ok"] and s["video_shape"][0] == 2 for s in samples)
    (sr,) = by_what["sr_upsample"]
    assert sr["ok"] and sr["frames"] >= 4 and sr["estimate_gib"] > 0
    assert sr["shape"][-1] == 128  # tiny-sr: 32 -> 128


def test_a_failing_part_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(gpu_user_path, "train_steps", broken)
    monkeypatch.setattr(
        gpu_user_path, "sampling", lambda args, precision: {"what": "sample", "finite": True}
    )
    monkeypatch.setattr(
        gpu_user_path, "super_resolution", lambda args: {"what": "sr_upsample", "finite": True}
    )
    results = tmp_path / "user_path.jsonl"
    assert gpu_user_path.main([str(results), "--precisions", "bf16", "--no-compile"]) == 1
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["what"] for r in records] == ["device", "train", "sample", "sample", "sr_upsample"]
    assert not records[1]["ok"] and "illegal memory access" in records[1]["error"]
    assert all(r["ok"] for r in records[2:])
