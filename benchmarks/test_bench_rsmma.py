"""RS-MMA's windowed cross attention at the model's real shapes, every implementation side by side.

Groups: one per (level, direction, batch, dtype, mode); rows: naive (masked full attention), the
release's per-frame loop, gather + SDPA, SDPA with a dense boolean mask, FlexAttention with an
equivalent block mask (compiled), xformers (when installed), the Triton kernel (CUDA only).
FLOPs count only the pairs inside the window (`bench_utils.attention_flops`).
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from bench_utils import (
    DENSE_LIMIT,
    DEVICE,
    DTYPES,
    ON_GPU,
    attention_flops,
    bench,
    flash_ceiling,
    matmul_ceiling,
    model_shapes,
)

from mmfast.ops import RSMMA_BACKENDS, rsmma_attention
from mmfast.ops.rsmma_reference import rsmma_release, window_mask

SHAPES, _ = model_shapes()
CONFIGS = [(4, "bf16"), (32, "bf16"), (4, "fp16")] if ON_GPU else [(1, "fp32")]
MODES = ["fwd", "fwd+bwd"]
IMPLS = ["naive", "release", "gather", "sdpa-mask", "flex", "xformers", "triton"]
SHIFT = 5  # a window that wraps for every level


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def _impl(name: str, q, k, v, s, scale: float):
    """A zero-argument function computing the attention with implementation `name`."""
    lq, lk = q.shape[2], k.shape[2]
    dense_bytes = q.shape[0] * q.shape[1] * lq * lk * 4
    if name in ("naive", "sdpa-mask", "xformers") and dense_bytes > DENSE_LIMIT:
        pytest.skip(f"dense {lq}x{lk} scores need {dense_bytes / 1e9:.0f} GB")
    if name == "naive":
        return lambda: rsmma_attention(q, k, v, s.segments, s.window, SHIFT, backend="naive")
    if name == "release":
        return lambda: rsmma_release(q, k, v, s.segments, s.window, SHIFT, scale)
    if name == "gather":
        return lambda: rsmma_attention(q, k, v, s.segments, s.window, SHIFT, backend="gather")
    if name == "sdpa-mask":
        mask = window_mask(lq, lk, s.segments, s.window, SHIFT, q.device)[0]
        return lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if name == "flex":
        from torch.nn.attention.flex_attention import create_block_mask

        sq, sk, f, w = s.q_per_segment, s.k_per_segment, s.segments, s.window

        def in_window(b, h, qi, ki):
            return torch.remainder(ki // sk - qi // sq - SHIFT, f) < w

        block_mask = create_block_mask(in_window, None, None, lq, lk, device=q.device)
        flex = _compiled_flex()
        return lambda: flex(q, k, v, block_mask=block_mask, scale=scale)
    if name == "xformers":
        xops = pytest.importorskip("xformers.ops")
        bias = torch.zeros(lq, lk, device=q.device, dtype=q.dtype)
        bias.masked_fill_(
            ~window_mask(lq, lk, s.segments, s.window, SHIFT, q.device)[0], float("-inf")
        )
        bias = bias.expand(q.shape[0], q.shape[1], lq, lk)
        t = lambda x: x.transpose(1, 2)
        return lambda: xops.memory_efficient_attention(
            t(q), t(k), t(v), attn_bias=bias, scale=scale
        ).transpose(1, 2)
    if name == "triton":
        if "triton" not in RSMMA_BACKENDS or not ON_GPU:
            pytest.skip("the Triton kernel runs on CUDA devices only")
        return lambda: rsmma_attention(q, k, v, s.segments, s.window, SHIFT, backend="triton")
    raise ValueError(name)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch,dtype", CONFIGS, ids=[f"B{b}-{d}" for b, d in CONFIGS])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_rsmma(benchmark, shape, batch, dtype, mode, impl):
    benchmark.group = f"rsmma {shape.name} B{batch} {dtype} {mode}"
    g = torch.Generator(device=DEVICE).manual_seed(0)
    dt, f = DTYPES[dtype], shape.segments
    grad = mode != "fwd"

    def rand(length):
        x = torch.randn(
            batch, shape.heads, length, shape.head_dim, device=DEVICE, dtype=dt, generator=g
        )
        return x.requires_grad_(grad)

    q, k, v = (
        rand(f * shape.q_per_segment),
        rand(f * shape.k_per_segment),
        rand(f * shape.k_per_segment),
    )
    scale = 1 / math.sqrt(shape.head_dim)
    try:
        attend = _impl(impl, q, k, v, shape, scale)
        attend()  # compile / autotune outside the timing
    except (RuntimeError, NotImplementedError, torch._dynamo.exc.BackendCompilerFailed) as err:
        pytest.skip(f"{impl} failed: {str(err).splitlines()[0][:160]}")
    dout = torch.randn(q.shape, device=DEVICE, dtype=dt, generator=g)

    def step():
        out = attend()
        if grad:
            out.backward(dout)

    keys = shape.window * shape.k_per_segment
    lq = f * shape.q_per_segment
    flops = attention_flops(batch, shape.heads, lq, keys, shape.head_dim, mode)
    ceilings = {}
    if ON_GPU:
        ceilings = {
            "matmul_bf16": matmul_ceiling(),
            "flash_dense": flash_ceiling(batch, shape.heads, lq, keys, shape.head_dim, dtype, mode),
        }
    bench(benchmark, step, flops=flops, ceilings=ceilings)
    benchmark.extra_info.update(
        impl=impl, level=shape.level, direction=shape.direction, batch=batch, dtype=dtype, mode=mode
    )
