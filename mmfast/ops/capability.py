"""What the Triton backends can use on this machine, as answers torch.compile treats as constants.

Backend choice runs inside the model's forward, so inside any region torch.compile traces. Every
question it asks of the environment goes through this module: the answers are either computed once
at import (`HAS_TRITON`) or come from functions marked constant for Dynamo, so a compiled model
never breaks its graph (or fails fullgraph) on them, in every supported torch version. Dynamo 2.11
refuses to trace `importlib.util.find_spec`, for one.
"""

from __future__ import annotations

import importlib.util
import os

import torch


def _find_triton() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a broken install, or an import hook that blocks it
        return False


HAS_TRITON: bool = _find_triton()


def interpreter_requested() -> bool:
    """Whether TRITON_INTERPRET=1 is set (Triton then runs kernels on CPU tensors, slowly)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def cuda_capability(index: int | None) -> tuple[int, int]:
    """The compute capability of CUDA device `index` (None: the current one)."""
    return torch.cuda.get_device_capability(index)


def cuda_name(index: int | None) -> str:
    """The name of CUDA device `index` (None: the current one), e.g. "Tesla T4"."""
    return torch.cuda.get_device_name(index)


# The first compute capability the Triton kernels run on. Below it Triton (>= 3.2) lowers tl.dot
# to scalar FMA: no tensor cores (its MMA path for Volta was removed), and the kernels' tiles ask
# for more shared memory than a T4 has. There PyTorch's own kernels are the fast path: SDPA's
# memory-efficient attention (which runs on sm_50+) and cuDNN's convolutions.
TRITON_MIN_CAPABILITY = (8, 0)


def triton_cuda_why_not(device: torch.device) -> str | None:
    """Why the Triton kernels should not run on CUDA device `device`, or None when they can."""
    major, minor = cuda_capability(device.index)
    if (major, minor) >= TRITON_MIN_CAPABILITY:
        return None
    return (
        f"{cuda_name(device.index)} (compute capability {major}.{minor}) is below "
        f"{TRITON_MIN_CAPABILITY[0]}.{TRITON_MIN_CAPABILITY[1]}: Triton >= 3.2 lowers tl.dot to "
        "scalar FMA there (no tensor cores), so the kernels would be slower than PyTorch's; "
        "backend='auto' takes SDPA (memory-efficient attention) for RS-MMA and cuDNN for the conv"
    )


# What torch.compiler.assume_constant_result does, without importing torch._dynamo here: that
# imports triton (before a test can set TRITON_INTERPRET) and costs every `import mmfast`.
for _fn in (interpreter_requested, cuda_capability, cuda_name):
    _fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
