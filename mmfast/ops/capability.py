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


# What torch.compiler.assume_constant_result does, without importing torch._dynamo here: that
# imports triton (before a test can set TRITON_INTERPRET) and costs every `import mmfast`.
for _fn in (interpreter_requested, cuda_capability):
    _fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
