"""Helpers shared by the tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

# The original release's test vectors (copies of ../shared/reference/, see data/README.md).
REFERENCE_DIR = Path(
    os.environ.get("MMFAST_REFERENCE_DIR", Path(__file__).resolve().parent / "data")
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
