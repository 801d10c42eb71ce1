"""Which backend each card gets, without the card: fake CUDA tensors (FakeTensorMode) and a mocked
`torch.cuda.get_device_capability` stand in for V100 (7.0), T4 (7.5), A100 (8.0), A10/3090 (8.6),
L4/4090 (8.9) and H100 (9.0). Below 8.0 `auto` takes PyTorch's kernels (SDPA over gathered windows
for RS-MMA, cuDNN's conv) and an explicit backend="triton" names the card and why."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from mmfast.ops import gn_silu_conv_backend, rsmma_backend

CARDS = {
    (7, 0): "Tesla V100-SXM2-16GB",
    (7, 5): "Tesla T4",
    (8, 0): "NVIDIA A100-SXM4-80GB",
    (8, 6): "NVIDIA A10",
    (8, 9): "NVIDIA L4",
    (9, 0): "NVIDIA H100 80GB HBM3",
}
DTYPES = [torch.float16, torch.bfloat16, torch.float32]


@pytest.fixture
def card(monkeypatch, request):
    """Pretend the current CUDA device is the card of capability request.param."""
    capability = request.param
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: CARDS[capability])
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # auto never takes the interpreter
    return capability


def _attention_inputs(dtype):
    with FakeTensorMode():
        q = torch.empty(2, 4, 16 * 25, 64, dtype=dtype, device="cuda")
        k = torch.empty(2, 4, 16 * 64, 64, dtype=dtype, device="cuda")
    return q, k, k


def _conv_input(dtype):
    with FakeTensorMode():
        return torch.empty(2, 128, 1600, dtype=dtype, device="cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("card", list(CARDS), ids=lambda c: f"sm{c[0]}{c[1]}", indirect=True)
def test_auto_picks_by_compute_capability(card, dtype):
    q, k, v = _attention_inputs(dtype)
    x = _conv_input(dtype)
    triton = card >= (8, 0)
    assert rsmma_backend(q, k, v, 3, "auto").name == ("triton" if triton else "gather")
    assert gn_silu_conv_backend(x, "auto").name == ("triton" if triton else "torch")
    if triton:
        assert rsmma_backend(q, k, v, 3, "triton").name == "triton"
        assert gn_silu_conv_backend(x, "triton").name == "triton"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("card", [(7, 0), (7, 5)], ids=["sm70", "sm75"], indirect=True)
def test_explicit_triton_below_sm80_names_the_card_and_why(card, dtype):
    q, k, v = _attention_inputs(dtype)
    x = _conv_input(dtype)
    name = CARDS[card]
    why = rf"{name} \(compute capability {card[0]}\.{card[1]}\) is below 8\.0: .*scalar FMA"
    with pytest.raises(ValueError, match=rf"backend 'triton' cannot run these inputs: {why}"):
        rsmma_backend(q, k, v, 3, "triton")
    with pytest.raises(ValueError, match=rf"backend 'triton' cannot run these inputs: {why}"):
        gn_silu_conv_backend(x, "triton")
