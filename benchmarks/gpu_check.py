"""One command for a lent GPU, run on a bare copy of this checkout (nothing installed):

    python3 benchmarks/gpu_check.py OUT_DIR [BUDGET_SECONDS=420]

Stages, in order, each in its own process group with a slot of the budget (time a stage leaves
unused goes to the later ones):
1. smoke: one forward and backward launch of each fused kernel per dtype at the released model's
   shapes against its float64 reference (benchmarks/gpu_smoke.py);
2. tests: the kernel correctness suites (tests/ops) on CUDA, per-test timeouts, no -x;
3. user_path: training steps of mmdiffusion-64 (fp16 + GradScaler, bf16; eager, then compiled),
   DPM-Solver sampling and an sr-256 upsample batch (benchmarks/gpu_user_path.py);
4. the benchmark suites (RS-MMA, the U-Net, the GroupNorm-SiLU-conv, SR), which skip their remaining cases
   at their slot's deadline.
Every result is appended to OUT_DIR/<stage>.jsonl the moment it exists (a stage killed at its
limit keeps what it measured), and OUT_DIR/gpu_check.json is rewritten after every stage. A short
table is printed last.

mmfast is imported from a staged copy of this checkout, in which `kernels/` sits where an install
puts it (`mmfast/kernels`); every stage runs with that copy as its working directory and first
`sys.path` entry, so `python -m pytest` (which puts the working directory first) imports it too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET = 420.0  # seconds; with staging, probing and the kill grace: under 8 minutes
# (stage, its share of the time left when it starts, relative to the stages after it). Sized for an
# H100 with a cold Triton cache: smoke compiles ~18 kernels (~30 s); tests/ops compiles every
# tile config on 8 workers (~120 s); the user path is dominated by two Inductor compiles of the
# 133M U-Net (~60-90 s each); the benchmarks skip their remaining cases at their deadline.
STAGES = [
    ("smoke", 0.08),
    ("tests", 0.28),
    ("user_path", 0.36),
    ("bench_rsmma", 0.12),
    ("bench_unet", 0.08),
    ("bench_gn_silu_conv", 0.05),
    ("bench_sr", 0.03),
]
# The least time a stage gets (when the ones before it overran): an eighth of the budget, at most
# this (the default budget gives every stage 20 s; CI's 80 s CPU run gives 10 s).
MIN_SLOT = 20.0
# Seconds a benchmark stage may run past its deadline (a case in flight, the JSON): a twentieth of
# the budget, at most this (CI's CPU run of the check, at an 80 s budget, waits 4 s, not 20).
GRACE = 20.0
TEST_TIMEOUT = 120  # seconds per test (a cold compile of every tile config of one kernel fits)
KILL_WAIT = 5.0  # seconds between SIGTERM and SIGKILL of a stage's process group


def stage_checkout() -> Path:
    """A copy of the checkout with kernels/ at mmfast/kernels, as an install lays it out."""
    dest = Path(tempfile.mkdtemp(prefix="mmfast-gpu-check-"))
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "results")
    shutil.copytree(ROOT / "mmfast", dest / "mmfast", ignore=skip)
    shutil.rmtree(dest / "mmfast" / "kernels", ignore_errors=True)
    shutil.copytree(ROOT / "kernels", dest / "mmfast" / "kernels", ignore=skip)
    for folder in ("tests", "benchmarks"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=skip)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")  # pytest's settings and markers
    return dest


def environment() -> dict:
    import torch

    env = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    import numpy

    env["numpy"] = numpy.__version__
    # Optional peers: absent ones (the lent GPU's image has neither) skip their rows.
    env["optional"] = {}
    for name in ("xformers", "av", "xdist", "pytest_timeout", "pytest_benchmark"):
        try:
            module = importlib.import_module(name)
            env["optional"][name] = getattr(module, "__version__", "present")
        except ImportError:
            env["optional"][name] = None
        except Exception as err:  # noqa: BLE001 - a broken optional install is reported
            env["optional"][name] = f"unimportable: {err}"
    try:
        env["commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            or None
        )
    except OSError:
        env["commit"] = None
    if torch.cuda.is_available():
        env["capability"] = list(torch.cuda.get_device_capability())
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        clk = lambda kind: pynvml.nvmlDeviceGetClockInfo(h, kind)
        mx = lambda kind: pynvml.nvmlDeviceGetMaxClockInfo(h, kind)
        name = pynvml.nvmlDeviceGetName(h)
        env["gpu"] = {
            "name": name.decode() if isinstance(name, bytes) else name,
            "driver": pynvml.nvmlSystemGetDriverVersion(),
            "memory_gib": pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30,
            "sm_clock_mhz": clk(pynvml.NVML_CLOCK_SM),
            "sm_clock_max_mhz": mx(pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": clk(pynvml.NVML_CLOCK_MEM),
            "mem_clock_max_mhz": mx(pynvml.NVML_CLOCK_MEM),
            "power_limit_w": pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000,
        }
    except Exception as err:  # noqa: BLE001 - the report says why it is missing
        env["gpu"] = {
            "name": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "nvml_error": str(err),
        }
    return env


def run_stage(cmd: list[str], *, cwd: Path, env: dict, limit: float, log: Path) -> dict:
    """Run `cmd` in a new process group for at most `limit` seconds; the whole group (xdist
    workers, compile workers) is ended when it returns or runs out of time."""
    print("+", " ".join(cmd), f"(slot {limit:.0f} s)", flush=True)
    start = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out = False
        try:
            returncode = proc.wait(timeout=max(limit, 1.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            _end_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=KILL_WAIT)
            returncode = 124
            f.write(f"\n[gpu_check] stopped at its {limit:.0f} s limit\n")
        _end_group(proc.pid, signal.SIGKILL)  # whatever the stage left running
        proc.wait()
    return {"returncode": returncode, "timed_out": timed_out, "seconds": time.monotonic() - start}


def _end_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut by the kill
            continue
    return records


def test_summary(records: list[dict]) -> dict:
    """Counts of the test records the plugin wrote (a stage cut short counts what finished)."""
    tests = [r for r in records if r.get("kind") == "test"]
    outcomes = Counter(r["outcome"] for r in tests)
    collected = [r["count"] for r in records if r.get("kind") == "collected"]
    reasons = Counter(r.get("message", "") for r in tests if r["outcome"] == "skipped")
    return {
        "collected": max(collected) if collected else 0,
        "collect_errors": [r for r in records if r.get("kind") == "collect_error"],
        "finished": len(tests),
        "passed": outcomes["passed"],
        "failed": outcomes["failed"],
        "errors": outcomes["error"],
        "skipped": outcomes["skipped"],
        "skip_reasons": dict(reasons.most_common(10)),
        "failed_ids": [
            {"nodeid": r["nodeid"], "message": r.get("message", "")[-600:]}
            for r in tests
            if r["outcome"] in ("failed", "error")
        ][:50],
        "slowest": sorted(
            ({"nodeid": r["nodeid"], "seconds": r["seconds"]} for r in tests),
            key=lambda r: -r["seconds"],
        )[:10],
    }


def write_report(out: Path, report: dict) -> None:
    tmp = out / "gpu_check.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=str))
    os.replace(tmp, out / "gpu_check.json")


def stage_command(name: str, out: Path, cuda: bool, cpus: int) -> list[str]:
    py = sys.executable
    plugin = ["-p", "no:cacheprovider", "-p", "gpu_check_plugin"]
    if name == "smoke":
        return [py, "benchmarks/gpu_smoke.py", str(out / "smoke.jsonl")]
    if name == "tests":
        cmd = [py, "-m", "pytest", "tests/ops", "-q", "-rs", *plugin]
        if importlib.util.find_spec("xdist"):
            cmd += ["-n", str(min(8, cpus))]  # Triton compiles in parallel
        if importlib.util.find_spec("pytest_timeout"):
            # signal: the test fails and the run goes on (thread would end the whole process)
            cmd += [f"--timeout={TEST_TIMEOUT}", "--timeout-method=signal"]
        return cmd + [f"--junitxml={out / 'tests.xml'}"]
    if name == "user_path":
        # Without a GPU only its imports run: a package the image lacks shows here, not on the GPU.
        return [py, "benchmarks/gpu_user_path.py", str(out / "user_path.jsonl")] + (
            [] if cuda else ["--imports-only"]
        )
    suite = name.removeprefix("bench_")
    return [
        py,
        "-m",
        "pytest",
        f"benchmarks/test_bench_{suite}.py",
        "--benchmark-only",
        "-q",
        *plugin,
        f"--benchmark-json={out / (name + '.json')}",
    ]


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_BUDGET
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.jsonl"):
        stale.unlink()
    start = time.monotonic()
    stage = stage_checkout()
    path = os.pathsep.join(
        p for p in (str(stage), str(stage / "benchmarks"), os.environ.get("PYTHONPATH")) if p
    )
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", MMFAST_BENCH_ROUNDS="10")
    env.pop("TRITON_INTERPRET", None)  # the CPU paths set it themselves, before importing triton
    env.pop("MMFAST_CI_ENV", None)  # every test runs here
    report = {
        "environment": environment(),
        "budget_s": budget,
        "staged_checkout": str(stage),
        "stages": {},
        "smoke": [],
        "tests": {},
        "user_path": [],
        "benchmarks": [],
    }
    cuda = bool(report["environment"]["cuda_available"])
    for name, version in report["environment"]["optional"].items():
        if version is None:
            print(f"{name}: not installed")
    write_report(out, report)

    for i, (name, share) in enumerate(STAGES):
        left = budget - (time.monotonic() - start)
        slot = max(left * share / sum(s for _, s in STAGES[i:]), min(MIN_SLOT, budget / 8))
        cmd = stage_command(name, out, cuda, os.cpu_count() or 1)
        jsonl = out / f"{name}.jsonl"
        stage_env = dict(env, MMFAST_RESULTS_JSONL=str(jsonl))
        limit = slot
        if name.startswith("bench_"):
            # Cases past the deadline skip themselves; the run then still writes its JSON.
            stage_env["MMFAST_BENCH_DEADLINE"] = str(time.time() + slot)
            limit = slot + min(GRACE, budget / 20)
        result = run_stage(cmd, cwd=stage, env=stage_env, limit=limit, log=out / f"{name}.log")
        records = read_jsonl(jsonl)
        report["stages"][name] = {"slot_s": round(slot, 1), **result, "records": len(records)}
        if name == "smoke":
            report["smoke"] = records
        elif name == "tests":
            report["tests"] = test_summary(records)
        elif name == "user_path":
            report["user_path"] = records
        else:
            report["benchmarks"] += [r for r in records if r.get("kind") == "benchmark"]
        report["wall_s"] = time.monotonic() - start
        write_report(out, report)

    shutil.rmtree(stage, ignore_errors=True)
    print(summary(report))
    smoke_ok = bool(report["smoke"]) and all(r.get("ok") for r in report["smoke"])
    t = report["tests"]
    tests_ok = not t.get("collect_errors") and not t.get("failed") and not t.get("errors")
    user_path_ok = bool(report["user_path"]) and all(r.get("ok", True) for r in report["user_path"])
    return 0 if smoke_ok and tests_ok and user_path_ok else 1


def summary(report: dict) -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import short_table

    lines = [short_table(report)] if report["benchmarks"] else []
    for r in report["smoke"]:
        errs = r.get("errors", {})
        worst = max(errs.values()) if errs else float("nan")
        lines.append(
            f"smoke {r.get('op')} {r.get('dtype')}: {'ok' if r.get('ok') else 'FAIL'} "
            f"(worst rel err {worst:.2e}, {r.get('seconds')} s) {r.get('error', '')}"
        )
    for r in report["user_path"]:
        if r.get("what") == "device":
            continue
        keys = ("precision", "compiled", "samples_per_s", "frames_per_s", "peak_gib", "wall_s")
        shown = {k: r[k] for k in keys if k in r}
        lines.append(f"user_path {r.get('what')}: {'ok' if r.get('ok') else 'FAIL'} {shown}")
    t = report["tests"]
    lines.append(
        f"tests: {t.get('collected')} collected, {len(t.get('collect_errors', []))} "
        f"collection errors, {t.get('passed')} passed, {t.get('failed')} failed, "
        f"{t.get('errors')} errors, {t.get('skipped')} skipped"
    )
    stages = {
        k: (v.get("returncode"), round(v.get("seconds", 0))) for k, v in report["stages"].items()
    }
    lines.append(
        f"{len(report['benchmarks'])} benchmark rows; {report.get('wall_s', 0):.0f} s; "
        f"stages (returncode, s): {stages}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
