"""The package installs with kernels/ as mmfast.kernels (the only import path for the Triton code)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_maps_kernels_into_mmfast(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("mmfast-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mmfast/kernels/__init__.py" in names
    assert any(n.startswith("mmfast/kernels/") and n.endswith("_fwd.py") for n in names)
    assert "mmfast/models/unet.py" in names and "mmfast/diffusion/sample.py" in names
    assert not any(n.startswith(("kernels/", "tests/", "benchmarks/")) for n in names)
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "mmfast = mmfast.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()


def test_installed_kernels_resolve_to_the_kernels_folder():
    import mmfast.kernels

    assert Path(mmfast.kernels.__file__).resolve().parent.name == "kernels"
