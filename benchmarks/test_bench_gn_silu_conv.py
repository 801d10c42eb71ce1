"""The audio in-path of every ResBlock, GroupNorm -> SiLU -> dilated conv1d (k = 3), at each
(C_in, C_out, L, dilation) the release model uses: PyTorch eager (cuDNN on the GPU), torch.compile
of the same, and the fused Triton op (CUDA only)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from bench_utils import DEVICE, DTYPES, ON_GPU, bench, conv_flops, matmul_ceiling, model_shapes

import mmfast.ops as ops

_, CONVS = model_shapes()
CONFIGS = [(4, "bf16")] if ON_GPU else [(1, "fp32")]
MODES = ["fwd", "fwd+bwd"]
IMPLS = ["eager", "compile", "triton"]
GROUPS = 32


def norm_silu_conv(x, gamma, beta, weight, bias, dilation: int):
    """The unfused reference path: fp32 group norm, SiLU, conv1d with "same" padding."""
    h = F.group_norm(x.float(), GROUPS, gamma, beta).to(x.dtype)
    return F.conv1d(F.silu(h), weight, bias, padding=dilation, dilation=dilation)


@functools.cache
def _compiled():
    return torch.compile(norm_silu_conv)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch,dtype", CONFIGS, ids=[f"B{b}-{d}" for b, d in CONFIGS])
@pytest.mark.parametrize("conv", CONVS, ids=[f"{ci}to{co}-L{n}-d{d}" for ci, co, n, d in CONVS])
def test_gn_silu_conv(benchmark, conv, batch, dtype, mode, impl):
    cin, cout, length, dilation = conv
    benchmark.group = f"gn_silu_conv {cin}->{cout} L{length} d{dilation} B{batch} {dtype} {mode}"
    g = torch.Generator(device=DEVICE).manual_seed(0)
    dt, grad = DTYPES[dtype], mode != "fwd"
    x = torch.randn(batch, cin, length, device=DEVICE, dtype=dt, generator=g).requires_grad_(grad)
    gamma = (1 + 0.1 * torch.randn(cin, device=DEVICE, generator=g)).requires_grad_(grad)
    beta = (0.1 * torch.randn(cin, device=DEVICE, generator=g)).requires_grad_(grad)
    weight = (
        (torch.randn(cout, cin, 3, device=DEVICE, generator=g) / (3 * cin) ** 0.5)
        .to(dt)
        .requires_grad_(grad)
    )
    bias = torch.zeros(cout, device=DEVICE, dtype=dt).requires_grad_(grad)
    if impl == "eager":
        run = lambda: norm_silu_conv(x, gamma, beta, weight, bias, dilation)
    elif impl == "compile":
        run = lambda: _compiled()(x, gamma, beta, weight, bias, dilation)
    else:
        if not ON_GPU or not hasattr(ops, "gn_silu_conv1d"):
            pytest.skip("the Triton op runs on CUDA devices only")
        run = lambda: ops.gn_silu_conv1d(
            x, gamma, beta, GROUPS, weight, bias, dilation, backend="triton"
        )
    try:
        run()  # compile outside the timing
    except (RuntimeError, NotImplementedError, torch._dynamo.exc.BackendCompilerFailed) as err:
        pytest.skip(f"{impl} failed: {str(err).splitlines()[0][:160]}")
    dout = torch.randn(batch, cout, length, device=DEVICE, dtype=dt, generator=g)

    def step():
        out = run()
        if grad:
            out.backward(dout)

    flops = conv_flops(batch, cin, cout, length, 3, mode)
    bench(
        benchmark, step, flops=flops, ceilings={"matmul_bf16": matmul_ceiling()} if ON_GPU else None
    )
    benchmark.extra_info.update(
        impl=impl,
        cin=cin,
        cout=cout,
        length=length,
        dilation=dilation,
        batch=batch,
        dtype=dtype,
        mode=mode,
    )
