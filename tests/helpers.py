"""Helpers shared by the tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

# The original release's test vectors (copies of ../shared/reference/, see data/README.md).
REFERENCE_DIR = Path(
    os.environ.get("MMFAST_REFERENCE_DIR", Path(__file__).resolve().parent / "fixtures")
)


def randomize_(model: torch.nn.Module, seed: int, std: float = 0.2) -> torch.nn.Module:
    """Overwrite every parameter with N(0, std^2) drawn from one seeded generator (the zero-initialised
    output layers would otherwise hide every difference between implementations). The default std
    makes RS-MMA's share of the `tiny` model's output large enough to see a change of window shift."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64."""
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm()).item()


def extractor_layout(name: str) -> dict:
    """One entry of data/extractor_layouts.json (e.g. "i3d_pretrained_400"): the state-dict rows
    {name, shape, dtype} of a standard evaluation weight file, with its notes and contract."""
    import json

    return json.loads((REFERENCE_DIR / "extractor_layouts.json").read_text())[name]


def layout_of(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple[list[int], str]]:
    """name -> (shape, dtype name) of `module.state_dict()`, keys prefixed with `prefix`."""
    return {
        prefix + k: (list(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in module.state_dict().items()
    }


def he_init_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """He-scaled conv and linear weights and BatchNorm statistics near identity, from one seeded
    generator, so that activations stay O(1) through a deep randomly initialised network and its
    outputs depend on its input (PyTorch's default init gives a deep net nearly constant
    outputs). Returns the model in eval mode."""
    import math

    g = torch.Generator().manual_seed(seed)
    convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, convs):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, norms):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model.eval()
