"""The GPU check's first stage: one forward and one backward launch of each fused kernel per dtype
at a shape of the released model (`mmdiffusion-64`), against the op's own float64 reference, in
seconds. A kernel that does not compile, launches wrongly or computes garbage shows here before
the longer suites spend the lease.

    python benchmarks/gpu_smoke.py RESULTS.jsonl

Without CUDA the same launches run in the Triton interpreter at a small shape, fp32 only (the
interpreter's bf16 dot is wrong and fp16 is slow there), so the check's plumbing is exercised on
a CPU too. One JSON line per launch: op, dtype, shape, relative errors, ok, seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

if not torch.cuda.is_available():
    # Set before triton is first imported: it is read when the kernels are decorated.
    os.environ["TRITON_INTERPRET"] = "1"

# Relative error budgets (norm of the difference over the norm of the float64 reference): fp32
# accumulates in fp32 (tf32 is off below), fp16/bf16 round inputs and the probabilities.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got, ref = got.double(), ref.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return float((got - ref).norm() / ref.norm().clamp_min(1e-300))


def _grads(fn, inputs, dout):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    out.backward(dout.to(out.dtype))
    return out.detach(), [t.grad for t in leaves]


def check_rsmma(device, dtype, gen, full: bool) -> dict:
    from bench_utils import model_shapes

    import mmfast.ops as ops

    if full:
        shape = model_shapes()[0][0]  # the largest level, video queries over audio keys
        b, h, f, sq, sk, w, d = (
            2,
            shape.heads,
            shape.segments,
            shape.q_per_segment,
            shape.k_per_segment,
            shape.window,
            shape.head_dim,
        )
    else:
        b, h, f, sq, sk, w, d = 1, 2, 4, 8, 5, 2, 32
    q = torch.randn(b, h, f * sq, d, generator=gen).to(device)
    k = torch.randn(b, h, f * sk, d, generator=gen).to(device)
    v = torch.randn(b, h, f * sk, d, generator=gen).to(device)
    dout = torch.randn(b, h, f * sq, d, generator=gen).to(device)
    shift = torch.randint(0, f, (b,), generator=gen).to(device)

    def run(backend):
        return lambda q, k, v: ops.rsmma_attention(q, k, v, f, w, shift, backend=backend)

    out, grads = _grads(run("triton"), [t.to(dtype) for t in (q, k, v)], dout)
    ref, ref_grads = _grads(run("gather"), [t.double() for t in (q, k, v)], dout)
    errs = {"out": rel_err(out, ref)}
    errs |= {n: rel_err(g, r) for n, g, r in zip(("dq", "dk", "dv"), grads, ref_grads)}
    return {"op": "rsmma", "shape": [b, h, f, sq, sk, w, d], "errors": errs}


def check_conv(device, dtype, gen, full: bool) -> dict:
    from bench_utils import model_shapes

    import mmfast.ops as ops

    if full:
        cin, cout, length, dilation = model_shapes()[1][0]
        b, groups = 2, 32
    else:
        b, cin, cout, length, dilation, groups = 2, 8, 12, 37, 3, 4
    x = torch.randn(b, cin, length, generator=gen).to(device)
    gamma = (1 + 0.1 * torch.randn(cin, generator=gen)).to(device)
    beta = (0.1 * torch.randn(cin, generator=gen)).to(device)
    weight = (torch.randn(cout, cin, 3, generator=gen) / (3 * cin) ** 0.5).to(device)
    bias = (0.1 * torch.randn(cout, generator=gen)).to(device)
    dout = torch.randn(b, cout, length, generator=gen).to(device)

    def run(backend):
        return lambda x, g, be, wt, bi: ops.gn_silu_conv1d(
            x, g, be, groups, wt, bi, dilation, backend=backend
        )

    inputs = (x, gamma, beta, weight, bias)
    # The norm's affine parameters stay fp32 (as the model keeps them); the rest in the dtype.
    low = [x.to(dtype), gamma, beta, weight.to(dtype), bias.to(dtype)]
    out, grads = _grads(run("triton"), low, dout)
    ref, ref_grads = _grads(run("torch"), [t.double() for t in inputs], dout)
    errs = {"out": rel_err(out, ref)}
    names = ("dx", "dgamma", "dbeta", "dweight", "dbias")
    errs |= {n: rel_err(g, r) for n, g, r in zip(names, grads, ref_grads)}
    return {"op": "gn_silu_conv", "shape": [b, cin, cout, length, dilation], "errors": errs}


def main() -> int:
    out_path = sys.argv[1]
    full = torch.cuda.is_available()
    device = torch.device("cuda" if full else "cpu")
    if full:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    dtypes = [torch.float32, torch.float16, torch.bfloat16] if full else [torch.float32]
    gen = torch.Generator().manual_seed(20261207)
    failures = 0
    with open(out_path, "a", encoding="utf-8") as f:
        for check in (check_rsmma, check_conv):
            for dtype in dtypes:
                start = time.time()
                try:
                    record = check(device, dtype, gen, full)
                    worst = max(record["errors"].values())
                    record["ok"] = worst <= TOLERANCE[dtype]
                except Exception as err:  # noqa: BLE001 - recorded, and the next launch runs
                    record = {"op": check.__name__[6:], "ok": False, "error": repr(err)[-1500:]}
                record |= {
                    "kind": "smoke",
                    "dtype": str(dtype).removeprefix("torch."),
                    "device": torch.cuda.get_device_name() if full else "cpu (Triton interpreter)",
                    "seconds": round(time.time() - start, 2),
                }
                failures += not record["ok"]
                f.write(json.dumps(record) + "\n")
                f.flush()
                print(json.dumps(record), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
