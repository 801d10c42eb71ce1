"""Exponential moving average of a model's parameters (fp32 shadow copies)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone() for name, p in model.named_parameters()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow = rate * shadow + (1 - rate) * param."""
        names = list(self.shadow)
        params = dict(model.named_parameters())
        shadows = [self.shadow[n] for n in names]
        torch._foreach_lerp_(shadows, [params[n].detach().float() for n in names], 1.0 - self.rate)

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"EMA state does not match the model: {sorted(missing)[:5]}")
        for name, t in state.items():
            self.shadow[name].copy_(t)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into `model` (its buffers are left alone)."""
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(self.shadow[name].to(p.dtype))
