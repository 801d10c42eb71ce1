"""Without a GPU, the Triton kernels run in the interpreter: TRITON_INTERPRET must be set before a
kernel module is imported (the decorator reads it), which this conftest does at collection, before
any test here imports `mmfast.kernels.*`. Everything else in mmfast imports triton lazily."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
