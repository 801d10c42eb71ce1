"""One command for a lent GPU: correctness of the kernels on CUDA, then the benchmark groups.

    python3 benchmarks/gpu_check.py OUT_DIR [BUDGET_SECONDS=420]

Writes OUT_DIR/gpu_check.json (environment, test summary, every benchmark row) and prints a short
table last. mmfast is imported from this checkout without installing anything: the package and
`kernels/` are copied to a temporary `mmfast` + `mmfast.kernels` tree on PYTHONPATH.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stage_package() -> str:
    """A PYTHONPATH entry holding mmfast with kernels/ as mmfast.kernels."""
    dest = Path(tempfile.mkdtemp(prefix="mmfast-pkg-"))
    shutil.copytree(
        ROOT / "mmfast", dest / "mmfast", ignore=shutil.ignore_patterns("__pycache__", "kernels")
    )
    shutil.copytree(
        ROOT / "kernels", dest / "mmfast" / "kernels", ignore=shutil.ignore_patterns("__pycache__")
    )
    return str(dest)


def environment() -> dict:
    import torch

    env = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    # Optional peers: absent ones (the H200 image has neither) skip their rows, as the logs say.
    env["optional"] = {}
    for name in ("xformers", "av"):
        try:
            env["optional"][name] = getattr(importlib.import_module(name), "__version__", "?")
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


def run(cmd: list[str], env: dict, timeout: float, log: Path) -> int:
    print("+", " ".join(cmd), flush=True)
    with open(log, "w") as f:
        try:
            return subprocess.run(
                cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=max(timeout, 1)
            ).returncode
        except subprocess.TimeoutExpired:
            f.write(f"\n[gpu_check] timed out after {timeout:.0f} s\n")
            return 124


def junit_summary(path: Path) -> dict:
    if not path.exists():
        return {
            "error": "no junit report (the run was cut at its time limit or crashed; see tests.log)"
        }
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    failed = [
        case.get("classname", "") + "::" + case.get("name", "")
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | {
        "failed": failed[:50]
    }


def bench_rows(path: Path) -> list[dict]:
    """The rows of a pytest-benchmark JSON (none if the run was cut before writing it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [
        {
            "group": b["group"],
            "name": b["name"],
            "median_s": b["stats"]["median"],
            "iqr_s": b["stats"]["iqr"],
            "rounds": b["stats"]["rounds"],
            **b.get("extra_info", {}),
        }
        for b in data.get("benchmarks", [])
    ]


# (stage, share of the time left when it starts, relative to the stages after it)
STAGES = [
    ("tests/ops", 0.38),
    ("benchmarks/test_bench_rsmma.py", 0.28),
    ("benchmarks/test_bench_unet.py", 0.16),
    ("benchmarks/test_bench_audio_conv.py", 0.11),
    ("benchmarks/test_bench_sr.py", 0.07),
]
GRACE = 45.0  # seconds a benchmark run may overrun its deadline (a case in flight, the JSON write)


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 420.0  # + GRACE at worst: under 8 minutes
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    path = os.pathsep.join(p for p in (stage_package(), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", MMFAST_BENCH_ROUNDS="10")
    env.pop("TRITON_INTERPRET", None)
    report = {"environment": environment(), "budget_s": budget, "stages": {}, "benchmarks": []}
    for name, version in report["environment"]["optional"].items():
        what = {"xformers": "its RS-MMA benchmark rows skip", "av": "nothing here needs it"}[name]
        print(f"{name}: {version or 'not installed'}" + ("" if version else f" ({what})"))
    parallel = (
        ["-n", "8"] if importlib.util.find_spec("xdist") else []
    )  # Triton compiles on 8 cores

    for i, (stage, share) in enumerate(STAGES):
        left = start + budget - time.time()
        slot = max(left * share / sum(sh for _, sh in STAGES[i:]), 10.0)
        name = Path(stage).stem
        if stage.startswith("tests"):
            # Kernel correctness on CUDA, fp16 and bf16 included.
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                stage,
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                *parallel,
                f"--junitxml={out / 'tests.xml'}",
            ]
            rc = run(cmd, env, slot, out / "tests.log")
            report["tests"] = {"returncode": rc, **junit_summary(out / "tests.xml")}
        else:
            # Cases past the deadline skip themselves; the run then still writes its JSON.
            stage_env = dict(env, MMFAST_BENCH_DEADLINE=str(time.time() + slot - GRACE / 3))
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                stage,
                "--benchmark-only",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={out / (name + '.json')}",
            ]
            rc = run(cmd, stage_env, slot + GRACE, out / f"{name}.log")
            rows = bench_rows(out / f"{name}.json")
            report["benchmarks"] += rows
        report["stages"][name] = {"returncode": rc, "seconds": round(time.time() - start, 1)}
    report["wall_s"] = time.time() - start
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import short_table

    print(short_table(report))
    t = report["tests"]
    print(
        f"tests: {t.get('tests')} run, {t.get('failures')} failed, {t.get('errors')} errors, {t.get('skipped')} skipped; "
        f"{len(report['benchmarks'])} benchmark rows; {report['wall_s']:.0f} s; stages {report['stages']}"
    )
    return 0 if report["tests"]["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
