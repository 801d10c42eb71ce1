"""Shared fixtures. Every random draw in the tests comes from a seeded generator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import REFERENCE_DIR


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert (REFERENCE_DIR / "official_fwd_shift0.pt").is_file(), (
        f"test vectors missing in {REFERENCE_DIR}"
    )
    return REFERENCE_DIR


def pytest_collection_modifyitems(config, items):
    """.ci/run sets MMFAST_CI_ENV to the environment it tests in; a test marked ci_env(name)
    runs there in that one only (slow tests whose risk is the same in both). Outside CI every
    test runs."""
    env = os.environ.get("MMFAST_CI_ENV")
    if env is None:
        return
    for item in items:
        marker = item.get_closest_marker("ci_env")
        if marker is not None and marker.args[0] != env:
            item.add_marker(pytest.mark.skip(reason=f"CI runs it in the {marker.args[0]} env"))
