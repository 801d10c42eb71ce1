"""Shared fixtures. Every random draw in the tests comes from a seeded generator."""

from __future__ import annotations

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
