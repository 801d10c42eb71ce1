"""The windowed cross attention's public entry point and its two reference backends."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmfast.ops import rsmma_attention
from mmfast.ops.rsmma_reference import (
    gather_windows,
    rsmma_naive_lse,
    rsmma_release,
    window_mask,
)


def _qkv(b, h, f, sq, sk, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, f * sq, d, generator=g, dtype=torch.float64).to(dtype)
    k = torch.randn(b, h, f * sk, d, generator=g, dtype=torch.float64).to(dtype)
    v = torch.randn(b, h, f * sk, d, generator=g, dtype=torch.float64).to(dtype)
    return q, k, v


def _loop_reference(q, k, v, f, window, shifts, scale):
    """Independent, per-query float64 loop over the rule itself (slow; tiny shapes only)."""
    b, h, lq, d = q.shape
    sq, sk = lq // f, k.shape[2] // f
    out = torch.empty(b, h, lq, d, dtype=torch.float64)
    for bi in range(b):
        for i in range(f):
            keys = torch.cat(
                [torch.arange(sk) + ((i + shifts[bi] + s) % f) * sk for s in range(window)]
            )
            qs = q[bi, :, i * sq : (i + 1) * sq].double()
            w = torch.softmax(qs @ k[bi][:, keys].double().transpose(-1, -2) * scale, dim=-1)
            out[bi, :, i * sq : (i + 1) * sq] = w @ v[bi][:, keys].double()
    return out


def test_window_mask_follows_the_rule():
    # F = 4 segments of 1 token: query i sees keys (i + 1), (i + 2) mod 4 for window 2, shift 1.
    mask = window_mask(4, 4, 4, 2, 1)[0]
    expected = torch.tensor(
        [[0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0]], dtype=torch.bool
    )
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("backend", ["naive", "gather"])
@pytest.mark.parametrize(
    "f,sq,sk,window,shift",
    [
        (4, 3, 5, 1, 0),
        (4, 3, 5, 2, 3),  # wraps around the clip's end
        (4, 1, 1, 4, 2),  # window = all
        (6, 25 // 5, 4, 3, 5),
        (16, 1, 2, 8, 15),
    ],
    ids=lambda x: str(x),
)
def test_backends_match_loop_reference(backend, f, sq, sk, window, shift):
    q, k, v = _qkv(2, 3, f, sq, sk, 8, torch.float64, seed=f * 100 + shift)
    out = rsmma_attention(q, k, v, f, window, shift, backend=backend)
    ref = _loop_reference(q, k, v, f, window, [shift, shift], 1 / math.sqrt(8))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["naive", "gather"])
def test_per_sample_shift_equals_one_call_per_sample(backend):
    f, window = 8, 3
    q, k, v = _qkv(3, 2, f, 4, 6, 16, torch.float64, seed=7)
    shifts = torch.tensor([0, 5, 7])
    out = rsmma_attention(q, k, v, f, window, shifts, backend=backend)
    ref = _loop_reference(q, k, v, f, window, shifts.tolist(), 0.25)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    for b in range(3):
        one = rsmma_attention(
            q[b : b + 1], k[b : b + 1], v[b : b + 1], f, window, int(shifts[b]), backend=backend
        )
        torch.testing.assert_close(out[b : b + 1], one, rtol=1e-10, atol=1e-12)


def test_shift_is_taken_mod_segments():
    q, k, v = _qkv(1, 1, 4, 2, 3, 8, torch.float64, seed=3)
    a = rsmma_attention(q, k, v, 4, 2, 1, backend="gather")
    b = rsmma_attention(q, k, v, 4, 2, 9, backend="gather")
    c = rsmma_attention(q, k, v, 4, 2, torch.tensor([-3]), backend="gather")
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a, rsmma_attention(q, k, v, 4, 2, 2, backend="gather"))


def test_release_algorithm_matches():
    q, k, v = _qkv(2, 2, 16, 3, 4, 8, torch.float64, seed=11)
    for window, shift in [(1, 0), (4, 13), (8, 9), (16, 0)]:
        ref = rsmma_attention(q, k, v, 16, window, shift, backend="naive")
        out = rsmma_release(q, k, v, 16, window, shift, 1 / math.sqrt(8))
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_naive_lse_is_the_log_partition():
    q, k, v = _qkv(1, 2, 4, 3, 2, 8, torch.float64, seed=5)
    out, lse = rsmma_naive_lse(q, k, v, 4, 2, 1, 0.3)
    mask = window_mask(12, 8, 4, 2, 1)[0]
    scores = (q @ k.transpose(-1, -2)) * 0.3
    expected = torch.stack(
        [
            torch.logsumexp(
                scores[0, h][:, None, :].masked_select(mask[:, None, :]).view(12, -1), -1
            )
            for h in range(2)
        ]
    )
    torch.testing.assert_close(lse[0], expected)


def test_gather_windows_are_the_rolled_segments():
    x = torch.arange(2 * 1 * 8 * 1, dtype=torch.float32).view(2, 1, 8, 1)  # 4 segments of 2 tokens
    win = gather_windows(x, 4, 2, torch.tensor([1, 3]))  # [B, 1, F, 4, 1]
    # sample 0, segment 3, shift 1: segments 0 and 1 -> tokens 0, 1, 2, 3
    assert win[0, 0, 3, :, 0].tolist() == [0, 1, 2, 3]
    # sample 1, segment 0, shift 3: segments 3 and 0 -> tokens 6, 7, 0, 1 (+ 8 for sample 1)
    assert win[1, 0, 0, :, 0].tolist() == [14, 15, 8, 9]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_close_to_float64(dtype):
    q, k, v = _qkv(2, 2, 16, 5, 7, 32, torch.float64, seed=21)
    ref = rsmma_attention(q, k, v, 16, 4, 6, backend="naive")
    tol = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 5e-3}[dtype]
    for backend in ["naive", "gather"]:
        out = rsmma_attention(q.to(dtype), k.to(dtype), v.to(dtype), 16, 4, 6, backend=backend)
        assert out.dtype == dtype
        err = ((out.double() - ref).norm() / ref.norm()).item()
        assert err < tol, (backend, err)


def test_gradients_agree():
    q, k, v = _qkv(2, 2, 4, 3, 5, 8, torch.float64, seed=9)
    grads = []
    for backend in ["naive", "gather"]:
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = rsmma_attention(qq, kk, vv, 4, 2, torch.tensor([1, 3]), backend=backend)
        out.backward(
            torch.ones_like(out) + torch.linspace(0, 1, out.numel(), dtype=out.dtype).view_as(out)
        )
        grads.append([qq.grad, kk.grad, vv.grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    f=st.integers(1, 8),
    sq=st.integers(1, 5),
    sk=st.integers(1, 5),
    window_frac=st.floats(0, 1),
    shift=st.integers(-20, 20),
    per_sample=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_gather_equals_naive(f, sq, sk, window_frac, shift, per_sample, seed):
    window = 1 + int(window_frac * (f - 1))
    q, k, v = _qkv(2, 2, f, sq, sk, 4, torch.float64, seed=seed)
    s = torch.tensor([shift, shift * 7 + 1]) if per_sample else shift
    a = rsmma_attention(q, k, v, f, window, s, backend="naive")
    b = rsmma_attention(q, k, v, f, window, s, backend="gather")
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "change,err,match",
    [
        (dict(q=torch.zeros(2, 12, 8)), ValueError, r"q must be \[B, H, L, D\]"),
        (dict(q=torch.zeros(1, 2, 12, 8, dtype=torch.long)), TypeError, "floating-point"),
        (dict(k=torch.zeros(1, 2, 8, 8, dtype=torch.float64)), TypeError, "share a dtype"),
        (dict(v=torch.zeros(1, 2, 4, 8)), ValueError, "same shape"),
        (
            dict(k=torch.zeros(1, 3, 8, 8), v=torch.zeros(1, 3, 8, 8)),
            ValueError,
            r"k must be \[B=1, H=2",
        ),
        (dict(segments=5), ValueError, "multiples of segments=5"),
        (dict(window=5), ValueError, r"window must be an int in \[1, segments=4\]"),
        (dict(window=0), ValueError, "window"),
        (dict(shift=1.5), TypeError, "shift must be an int"),
        (dict(shift=torch.tensor([1.0])), TypeError, "integer tensor"),
        (dict(shift=torch.tensor([1, 2])), ValueError, r"shape \[B=1\]"),
        (dict(backend="cuda-magic"), ValueError, "unknown backend"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_bad_inputs_are_named(change, err, match):
    args = dict(
        q=torch.zeros(1, 2, 12, 8),
        k=torch.zeros(1, 2, 8, 8),
        v=torch.zeros(1, 2, 8, 8),
        segments=4,
        window=2,
        shift=1,
    )
    backend = change.pop("backend", "auto")
    args.update(change)
    with pytest.raises(err, match=match):
        rsmma_attention(**args, backend=backend)
