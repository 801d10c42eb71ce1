"""The arithmetic precision of training and sampling: fp32, or torch.autocast to fp16 or bf16 (the
norms' statistics stay fp32 either way, as the release's GroupNorm32)."""

from __future__ import annotations

import contextlib

import torch

from mmfast.choice import Choice


class Precision(Choice):
    FP32 = "fp32"
    FP16 = "fp16"  # autocast (+ GradScaler in training): the paper's V100 recipe
    BF16 = "bf16"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype of torch.autocast for this precision (None: no autocast)."""
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.value)

    def autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        """torch.autocast to `autocast_dtype` on `device_type`; for fp32 no context at all, so that
        a caller's own autocast stays on."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=dtype)
