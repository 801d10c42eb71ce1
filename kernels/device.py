"""The questions the launchers ask of the device, in one place so that the compile check
(`tests/ops/check_compile.py`) can stand in for any card on a machine without one."""

from __future__ import annotations

import contextlib

import torch

# Compute capability as major * 10 + minor (sm_80 -> 80) of the CPU interpreter: it has no
# register file or shared memory to size tiles for, so it takes the largest card's choices.
INTERPRETER_ARCH = 90


def sms(x: torch.Tensor) -> int | None:
    """The streaming multiprocessors of x's GPU, or None for CPU tensors (the interpreter)."""
    if not x.is_cuda:
        return None
    return torch.cuda.get_device_properties(x.device).multi_processor_count


def arch(x: torch.Tensor) -> int:
    """x's GPU's compute capability as major * 10 + minor (80 for an A100), INTERPRETER_ARCH for
    CPU tensors."""
    if not x.is_cuda:
        return INTERPRETER_ARCH
    major, minor = torch.cuda.get_device_capability(x.device)
    return 10 * major + minor


def on_device(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Launch on x's GPU, not the current one: Triton launches on the current device and stream,
    so a tensor on cuda:1 while cuda:0 is current would otherwise be read by a kernel on cuda:0."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def allow_tf32_convs() -> bool:
    """Whether PyTorch's own fp32 convolutions may use TF32 (cuDNN's setting), through whichever
    API the user set it with. From torch 2.9, once `torch.backends.cudnn.conv.fp32_precision` (or
    `torch.backends.fp32_precision`) has been set, reading the legacy `cudnn.allow_tf32` raises."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    precision = getattr(conv, "fp32_precision", None)
    if precision is None:  # torch < 2.9: only the legacy flag exists
        return bool(torch.backends.cudnn.allow_tf32)
    if precision == "none":  # inherits cudnn's, which inherits the global setting
        precision = torch.backends.cudnn.fp32_precision
    if precision == "none":
        precision = torch.backends.fp32_precision
    return precision == "tf32"
