"""The GPU check runs as the lent GPU machine runs it: on a bare copy of the checkout (git's files,
nothing installed), under an interpreter that has only the GPU image's packages at its versions
(.ci/gpu-image.txt + .ci/gpu-image-bare.txt), through `bash benchmarks/gpu_check.sh OUT BUDGET`.

On this CPU the kernels run in the Triton interpreter, the CUDA-only tests skip and the user-path
stage says it needs a GPU; what matters here is that every stage runs and reports, that the
kernel suites import mmfast (with `mmfast.kernels`) from the staged checkout and are collected,
and that a stage cut at its time limit keeps its results.

.ci/run builds that interpreter (a venv without mmfast) and points MMFAST_GPU_BARE_PYTHON at it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BARE_PYTHON = os.environ.get("MMFAST_GPU_BARE_PYTHON")
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_check import STAGES  # noqa: E402

pytestmark = pytest.mark.ci_env("gpu-bare")


def _bare_python() -> str:
    if BARE_PYTHON:
        return BARE_PYTHON
    if os.environ.get("MMFAST_CI_ENV") == "gpu-bare":
        pytest.fail("MMFAST_CI_ENV=gpu-bare needs MMFAST_GPU_BARE_PYTHON (see .ci/run)")
    pytest.skip(
        "needs an interpreter with only the GPU image's packages: set MMFAST_GPU_BARE_PYTHON "
        "(.ci/run builds one from .ci/gpu-image.txt and .ci/gpu-image-bare.txt)"
    )


def _bare_copy(dest: Path) -> Path:
    """The files the device tool sends: tracked and untracked-not-ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


@pytest.fixture(scope="module")
def gpu_check_run(tmp_path_factory):
    python = _bare_python()
    probe = subprocess.run([python, "-c", "import mmfast"], capture_output=True, text=True, cwd="/")
    assert probe.returncode != 0, f"{python} has mmfast installed; the GPU machine does not"
    checkout = _bare_copy(tmp_path_factory.mktemp("checkout"))
    out = tmp_path_factory.mktemp("out")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MMFAST_"))}
    env["PATH"] = str(Path(python).parent) + os.pathsep + env["PATH"]  # its python3 first
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(out), "80"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report_path = out / "gpu_check.json"
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(report_path.read_text()), out


def test_every_stage_reports(gpu_check_run):
    proc, report, _ = gpu_check_run
    assert report["environment"]["cuda_available"] is False
    assert [name for name, _ in STAGES] == list(report["stages"])
    for name, stage in report["stages"].items():
        assert "returncode" in stage and stage["seconds"] > 0, (name, stage)
    # Without a GPU the user path only imports the trainer, generation and the models, without
    # PyAV as on the image: that much must work.
    assert report["stages"]["user_path"]["returncode"] == 0, report["stages"]["user_path"]
    assert [(r["what"], r["ok"]) for r in report["user_path"]] == [("imports", True)]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_kernel_suites_are_collected_from_the_staged_checkout(gpu_check_run):
    _, report, out = gpu_check_run
    tests = report["tests"]
    assert tests["collect_errors"] == [], tests["collect_errors"]
    assert tests["collected"] >= 100, tests  # tests/ops: several hundred cases
    assert tests["failed"] == 0 and tests["errors"] == 0, tests["failed_ids"]
    # The CUDA-only tests run first (they cost nothing) and skip with their reason here.
    assert tests["skipped"] >= 1 and any("CUDA" in r for r in tests["skip_reasons"]), tests
    log = (out / "tests.log").read_text()
    assert "No module named 'mmfast.kernels'" not in log


def test_smoke_launches_every_kernel_against_its_reference(gpu_check_run):
    _, report, _ = gpu_check_run
    smoke = {(r["op"], r["dtype"]): r for r in report["smoke"]}
    assert set(smoke) == {("rsmma", "float32"), ("gn_silu_conv", "float32")}, report["smoke"]
    for record in smoke.values():
        assert record["ok"], record
        assert record["device"] == "cpu (Triton interpreter)"
        assert max(record["errors"].values()) < 1e-4


def test_a_stage_cut_at_its_limit_keeps_what_it_finished(gpu_check_run):
    """At this budget the interpreter cannot finish tests/ops: the stage is stopped, and the tests
    that finished before are in the report all the same."""
    _, report, _ = gpu_check_run
    stage = report["stages"]["tests"]
    assert stage["timed_out"] and stage["returncode"] == 124, stage
    assert report["tests"]["finished"] >= 1 and stage["records"] >= 2
