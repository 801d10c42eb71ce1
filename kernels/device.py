"""The one question the conv launchers ask of the device, in one place so that the sm_90 compile
check (`tests/ops/check_sm90.py`) can stand in for a GPU on a machine without one."""

from __future__ import annotations

import torch


def sms(x: torch.Tensor) -> int | None:
    """The streaming multiprocessors of x's GPU, or None for CPU tensors (the interpreter)."""
    if not x.is_cuda:
        return None
    return torch.cuda.get_device_properties(x.device).multi_processor_count
