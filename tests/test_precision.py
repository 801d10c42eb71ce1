"""`mmfast.precision.Precision`: the autocast dtype of each precision, and its context."""

from __future__ import annotations

import pytest
import torch

from mmfast.precision import Precision


@pytest.mark.parametrize(
    "name, dtype", [("fp32", None), ("fp16", torch.float16), ("bf16", torch.bfloat16)]
)
def test_each_precision_autocasts_to_its_dtype(name, dtype):
    precision = Precision(name)
    assert precision.autocast_dtype == dtype
    with precision.autocast("cpu"):
        on = torch.is_autocast_enabled("cpu")
        got = torch.get_autocast_dtype("cpu")
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert on == (dtype is not None)
    assert y.dtype == (dtype or torch.float32)
    if dtype is not None:
        assert got == dtype


def test_fp32_leaves_a_callers_autocast_on():
    with torch.autocast("cpu", dtype=torch.bfloat16), Precision.FP32.autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
