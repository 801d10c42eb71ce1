"""A pytest plugin for the GPU check: every result is appended to a JSON-lines file the moment it
exists, so a stage killed at its time limit keeps what it measured (a junit report or a
pytest-benchmark JSON is written only at the end).

    python -m pytest -p gpu_check_plugin ...   (MMFAST_RESULTS_JSONL names the file)

Records, one JSON object a line:
    {"kind": "collected", "count": N}                      (per process: xdist workers each send one)
    {"kind": "collect_error", "nodeid": ..., "message": ...}
    {"kind": "test", "nodeid": ..., "outcome": "passed"|"failed"|"skipped"|"error", "seconds": ...,
     "message": ... (failures and skips)}
    {"kind": "benchmark", "group": ..., "name": ..., "median_s": ..., "iqr_s": ..., "rounds": ...,
     **extra_info}
"""

from __future__ import annotations

import json
import os
import time

import pytest

_PATH = os.environ.get("MMFAST_RESULTS_JSONL")


def _write(record: dict) -> None:
    if not _PATH:
        return
    record.setdefault("time", time.time())
    line = json.dumps(record, default=str) + "\n"
    # One write per record in append mode: lines from several processes never interleave.
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _message(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = str(report.longrepr or "")
    return text[-1500:]


def _skips_for_sure(item) -> bool:
    return any(
        m.args and m.args[0] is True or not m.args and m.kwargs.get("condition", True) is True
        for m in item.iter_markers("skipif")
    ) or any(True for _ in item.iter_markers("skip"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Tests that will skip (CUDA-only tests without a GPU, kernels a card cannot run) first: they
    cost nothing, and a run cut at its time limit still says what was skipped and why."""
    items.sort(key=lambda item: not _skips_for_sure(item))


def pytest_collection_finish(session) -> None:
    # With xdist this runs in each worker (the controller collects nothing); the check reads the
    # largest count, since every worker collects the whole suite.
    _write({"kind": "collected", "count": len(session.items)})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    _write({"kind": "collected", "count": len(ids)})


def pytest_collectreport(report) -> None:
    if report.failed:
        _write({"kind": "collect_error", "nodeid": report.nodeid, "message": _message(report)})


def pytest_runtest_logreport(report) -> None:
    # Under xdist the controller receives every worker's reports through this hook; workers
    # must not write them a second time.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = report.outcome
        if report.when == "setup" and report.failed:
            outcome = "error"
        record = {
            "kind": "test",
            "nodeid": report.nodeid,
            "outcome": outcome,
            "seconds": round(report.duration, 3),
        }
        if not report.passed:
            record["message"] = _message(report)
        _write(record)
    elif report.when == "teardown" and report.failed:
        _write(
            {
                "kind": "test",
                "nodeid": report.nodeid,
                "outcome": "error",
                "seconds": round(report.duration, 3),
                "message": _message(report),
            }
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    bm = getattr(item, "funcargs", {}).get("benchmark")
    stats = getattr(bm, "stats", None)
    if stats is None or getattr(stats, "stats", None) is None:
        return
    s = stats.stats
    _write(
        {
            "kind": "benchmark",
            "nodeid": item.nodeid,
            "group": getattr(stats, "group", None) or getattr(bm, "group", None),
            "name": getattr(stats, "name", item.name),
            "median_s": s.median,
            "iqr_s": s.iqr,
            "rounds": s.rounds,
            **getattr(bm, "extra_info", {}),
        }
    )
