"""Exponential moving average of a model's parameters (fp32 shadow copies)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """warmup: use min(rate, (1 + n) / (10 + n)) at update n, so that a short run's average is not
    dominated by the initial weights (the release used the plain rate from step 0)."""

    def __init__(self, model: nn.Module, rate: float, warmup: bool = False):
        self.rate = rate
        self.warmup = warmup
        self.updates = 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone() for name, p in model.named_parameters()
        }

    def decay(self) -> float:
        """The decay the next update uses."""
        n = self.updates
        return min(self.rate, (1 + n) / (10 + n)) if self.warmup else self.rate

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow = decay * shadow + (1 - decay) * param."""
        names = list(self.shadow)
        params = dict(model.named_parameters())
        shadows = [self.shadow[n] for n in names]
        torch._foreach_lerp_(
            shadows, [params[n].detach().float() for n in names], 1.0 - self.decay()
        )
        self.updates += 1

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
