"""The compile check (tests/ops/check_compile.py) runs, and the launches that once spilled on the
A100 compile for sm_80 without spills. Its full sweep (every launch of the release model, every
dtype, each card) takes tens of minutes of ptxas on 2 cores: run it by hand after changing a tile
picker, `python tests/ops/check_compile.py --arch 80` (and 86, 89, 90, 75)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("check_compile.py")


@pytest.mark.slow
def test_sm80_smoke_launches_do_not_spill():
    pytest.importorskip("triton")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--arch", "80", "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    launches, failed = map(
        int, re.search(r"(\d+) distinct launches, (\d+) fail on sm_80", run.stdout).groups()
    )
    assert failed == 0 and launches >= 8, run.stdout
    assert "stack=0" in run.stdout and "FAIL" not in run.stdout
