"""The tiny U-Net under torch.compile(fullgraph=True) with the backends `auto` picks on this
machine (RS-MMA and the audio conv: gather + torch on a CPU and on GPUs below compute capability
8.0, the Triton kernels from 8.0), forward and backward, against eager. Backend choice runs inside the traced
forward, so every question it asks must be one Dynamo can answer (torch 2.11's Dynamo refused
`importlib.util.find_spec`, breaking the GPU image's compiled model)."""

from __future__ import annotations

import torch
from helpers import randomize_, rel_err

from mmfast.models import CoupledUNet
from mmfast.ops import backends

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PYTORCH_PICKS = {"attention": {"gather"}, "conv": {"torch"}}  # SDPA and cuDNN on a GPU
TRITON_PICKS = {"attention": {"triton"}, "conv": {"triton"}}


def _auto_picks(device: str) -> dict[str, set[str]]:
    if device == "cuda" and torch.cuda.get_device_capability() >= (8, 0):
        return TRITON_PICKS
    return PYTORCH_PICKS


def _inputs(model: CoupledUNet, device: str):
    """Two samples with their own window shift per stage (LongTensors [B], as the trainer passes
    them under compile)."""
    g = torch.Generator().manual_seed(11)
    video = torch.randn(2, 16, 3, 16, 16, generator=g)
    audio = torch.randn(2, 1, 1024, generator=g)
    t = torch.tensor([17.0, 940.0])
    per_sample = [model.draw_shifts(16, g) for _ in range(2)]
    shifts = [torch.tensor(pair, device=device) for pair in zip(*per_sample)]
    assert any(a != b for a, b in zip(*per_sample))
    return [x.to(device) for x in (video, audio, t)], shifts


def _picks(monkeypatch) -> dict[str, set[str]]:
    """Record the backends `auto` resolves to while the model runs eagerly."""
    seen: dict[str, set[str]] = {"attention": set(), "conv": set()}
    kind = {"RS-MMA": "attention", "gn_silu_conv": "conv"}
    select = backends.select_backend

    def spy(op, table, backend, *inputs):
        chosen = select(op, table, backend, *inputs)
        seen[kind[op]].add(chosen.name)
        return chosen

    monkeypatch.setattr(backends, "select_backend", spy)
    return seen


def _run(model, fn, inputs, shifts):
    model.zero_grad(set_to_none=True)
    video, audio, t = inputs
    eps_v, eps_a = fn(video, audio, t, shift=shifts)
    (eps_v.square().mean() + eps_a.square().mean()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return (eps_v.detach(), eps_a.detach()), grads


def test_tiny_unet_compiles_fullgraph_with_the_auto_backends(monkeypatch):
    model = randomize_(CoupledUNet("tiny"), seed=5, std=0.05).to(DEVICE)  # auto everywhere
    inputs, shifts = _inputs(model, DEVICE)
    seen = _picks(monkeypatch)
    want, want_grads = _run(model, model, inputs, shifts)
    assert seen == _auto_picks(DEVICE)
    monkeypatch.undo()  # trace the real dispatch, not the spies

    # Inductor on a GPU; on a CPU aot_eager (Dynamo, the ops' fake kernels, AOTAutograd), since
    # Inductor's C++ codegen would add minutes on a 2-core machine without testing anything of ours.
    torch._dynamo.reset()
    try:
        compiled = torch.compile(
            model, fullgraph=True, backend="inductor" if DEVICE == "cuda" else "aot_eager"
        )
        got, got_grads = _run(model, compiled, inputs, shifts)
    finally:
        torch._dynamo.reset()
    tol = 1e-5 if DEVICE == "cpu" else 2e-3  # inductor fuses and reorders fp32 sums
    for x, y in zip(got, want):
        assert rel_err(x, y) < tol
    for name, g in want_grads.items():
        assert rel_err(got_grads[name], g) < 10 * tol, name
