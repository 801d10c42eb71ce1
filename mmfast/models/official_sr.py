"""Loading the original release's super-resolution checkpoints (guided-diffusion SR U-Net state
dicts). Our SR model keeps the release's names; the attention's 1x1 Conv1d weights [C', C, 1]
become Linear weights [C', C]."""

from __future__ import annotations

import torch
from torch import Tensor

from mmfast.models.official import check_match


def convert_official_sr_state_dict(
    sd: dict[str, Tensor], ours: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Map a release SR state dict onto our model's (`ours`) shapes; raises ValueError listing
    missing, unexpected and misshapen tensors."""
    out, missing, misshapen = {}, [], []
    for name, target in ours.items():
        if name not in sd:
            missing.append(f"{name} {list(target.shape)}")
            continue
        src = sd[name]
        if src.shape != target.shape:
            # Only trailing size-1 dims may differ (Conv1d k=1 -> Linear).
            squeezed = src.reshape(src.shape[: target.dim()]) if src.dim() > target.dim() else None
            if squeezed is None or src.shape[target.dim() :] != (1,) * (src.dim() - target.dim()):
                misshapen.append(f"{name}: expected {list(target.shape)}, got {list(src.shape)}")
                continue
            if squeezed.shape != target.shape:
                misshapen.append(f"{name}: expected {list(target.shape)}, got {list(src.shape)}")
                continue
            src = squeezed
        out[name] = src.to(torch.float32)
    check_match(len(ours), missing, misshapen, sorted(set(sd) - set(ours)))
    return out


def to_official_sr_state_dict(model) -> dict[str, Tensor]:
    """Our SR model's weights under the release's shapes (the inverse of loading)."""
    out = {}
    for name, t in model.state_dict().items():
        if name.endswith((".qkv.weight", ".proj_out.weight")) and t.dim() == 2:
            t = t[..., None]
        out[name] = t.contiguous()
    return out
