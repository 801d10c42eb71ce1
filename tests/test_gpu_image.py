"""What the GPU check (`benchmarks/gpu_check.sh`) runs imports nothing the lent GPU's image lacks:
that image has neither PyAV nor xformers (the device tool's KINDS.md), so a kernel test or a
benchmark that imported `av`, even through `mmfast.data`, would fail there before measuring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("av", "xformers")

BLOCKER = f"""
import sys

class _NotOnTheGpuImage:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU image)", name=name)
        return None

sys.meta_path.insert(0, _NotOnTheGpuImage())
"""


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path)


def test_the_blocker_blocks(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import av"], env=_env(tmp_path), capture_output=True, text=True
    )
    assert proc.returncode != 0 and "not on the GPU image" in proc.stderr


def test_gpu_check_collects_without_av_or_xformers(tmp_path):
    env = _env(tmp_path)
    collect = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/ops", "benchmarks"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-3000:]
    assert "not on the GPU image" not in collect.stdout + collect.stderr
    script = "import sys; sys.path.insert(0, 'benchmarks'); import gpu_check, report; print('ok')"
    imports = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert imports.stdout.strip() == "ok", imports.stderr


def test_training_imports_without_av_and_media_calls_say_what_is_missing(tmp_path):
    """Training from a store or synthetic clips needs no PyAV; reading a video says it does."""
    script = (
        "import mmfast.train, mmfast.data\n"
        "try:\n"
        "    mmfast.data.probe('clip.mp4')\n"
        "except ModuleNotFoundError as e:\n"
        "    print('missing:', e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("missing: reading or writing video files needs PyAV"), proc.stdout
