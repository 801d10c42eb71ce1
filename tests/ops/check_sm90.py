"""Compile the Triton kernels (RS-MMA and the fused GroupNorm -> SiLU -> dilated conv) for sm_90
(H100/H200) on a machine without a GPU, at the configs their launchers pick for the release model's
shapes, and print each launch's registers, shared memory and spill stack.

    python tests/ops/check_sm90.py [--kernels rsmma conv] [--dtypes bfloat16 float16 float32]

Exits 1 if any launch spills (a non-zero stack). Not a test (pytest does not collect it): it swaps
Triton's active driver for a stand-in that reports an sm_90 target, which leans on Triton internals
(checked with triton 3.6 and 3.8). The launchers run with `warmup`, so nothing is launched; ptxas
(bundled with triton) does the register allocation. fp32 convs are compiled twice: with TF32 dots
(PyTorch's default for convolutions, `torch.backends.cudnn.allow_tf32`) and with IEEE fp32 ones.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402

H200_SMS = 132


class _Sm90Driver:
    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)


driver.set_active(_Sm90Driver())

from mmfast.kernels import (  # noqa: E402
    device,
    gn_silu_dilated_conv_bwd,
    gn_silu_dilated_conv_fwd,
    group_norm_stats,
    rsmma_bwd,
    rsmma_fwd,
)

compiled: list[tuple[str, dict, object]] = []


class _Warmup:
    """Stands in for a kernel: `kernel[grid](...)` compiles and records instead of launching."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            compiled.append(
                (self.kernel.fn.__name__, kwargs, self.kernel.warmup(*args, grid=grid, **kwargs))
            )

        return run


def _usage(kernel) -> tuple[int, int]:
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        out = subprocess.run(
            [cuobjdump, "-res-usage", f.name], capture_output=True, text=True
        ).stdout
    return int(re.search(r"REG:(\d+)", out).group(1)), int(re.search(r"STACK:(\d+)", out).group(1))


_printed: set[int] = set()


def _report(label: str) -> int:
    """Print the distinct kernels compiled since the last report (a launch whose compiled kernel
    was printed before is not repeated); return how many of them spill."""
    spills = 0
    for name, kw, kernel in compiled:
        if id(kernel) in _printed:
            continue
        _printed.add(id(kernel))
        regs, stack = _usage(kernel)
        spills += stack > 0
        blocks = " ".join(
            f"{k.removeprefix('BLOCK_')}{v}" for k, v in kw.items() if k.startswith("BLOCK")
        )
        print(
            f"{label:36} {name:40} {blocks:22} warps={kw.get('num_warps', 4)} "
            f"stages={kw.get('num_stages', 3)} regs={regs} smem={kernel.metadata.shared} stack={stack}"
        )
    compiled.clear()
    return spills


def check_rsmma(dtypes: list[torch.dtype]) -> int:
    rsmma_fwd.rsmma_fwd_kernel = _Warmup(rsmma_fwd.rsmma_fwd_kernel)
    for name in ("rsmma_bwd_kernel_preprocess", "rsmma_bwd_kernel_dkdv", "rsmma_bwd_kernel_dq"):
        setattr(rsmma_bwd, name, _Warmup(getattr(rsmma_bwd, name)))
    rsmma_fwd.check_device = lambda t: None  # CPU tensors stand in for CUDA ones
    # (query tokens, key tokens) per segment and window of the release's RS-MMA blocks.
    model = [(400, 1024, 1), (1024, 400, 1), (100, 256, 4), (256, 100, 4), (25, 64, 8), (64, 25, 8)]
    spills = 0
    for dtype in dtypes:
        for d, shapes in (
            (64, model + [(25, 64, 16), (1, 25, 8), (33, 1, 16)]),
            (128, model[2:]),
            (32, model[2:]),
            (16, model[2:]),
        ):
            for sq, sk, w in shapes:
                q = torch.empty(1, 2, 16 * sq, d, dtype=dtype)
                k = torch.empty(1, 2, 16 * sk, d, dtype=dtype)
                out, lse = rsmma_fwd.rsmma_fwd(q, k, k, 16, w, 3)
                rsmma_bwd.rsmma_bwd(out, q, k, k, out, lse, 16, w, 3)
                spills += _report(f"rsmma {str(dtype)[6:]} D{d} SQ{sq} SK{sk} W{w}")
    return spills


def _conv_shapes() -> list[tuple[int, int, int, int]]:
    """(Cin, Cout, L, dilation) of every ResBlock's audio in-path in the release model."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_utils import model_shapes

    return sorted(set(model_shapes()[1]))


def check_conv(dtypes: list[torch.dtype]) -> int:
    gn_silu_dilated_conv_fwd.gn_silu_dilated_conv_fwd_kernel = _Warmup(
        gn_silu_dilated_conv_fwd.gn_silu_dilated_conv_fwd_kernel
    )
    group_norm_stats.group_norm_stats_fwd_kernel = _Warmup(
        group_norm_stats.group_norm_stats_fwd_kernel
    )
    for name in (
        "gn_silu_dilated_conv_bwd_kernel_dx",
        "gn_silu_dilated_conv_bwd_kernel_dx_norm",
        "gn_silu_dilated_conv_bwd_kernel_dw",
    ):
        setattr(gn_silu_dilated_conv_bwd, name, _Warmup(getattr(gn_silu_dilated_conv_bwd, name)))
    device.sms = lambda x: H200_SMS  # CPU tensors stand in for an H200's
    shapes = _conv_shapes()
    spills = 0
    for dtype in dtypes:
        modes = [True, False] if dtype == torch.float32 else [True]
        for tf32 in modes:
            torch.backends.cudnn.allow_tf32 = tf32
            tag = str(dtype)[6:] + ("" if dtype != torch.float32 else "-tf32" if tf32 else "-ieee")
            for cin, cout, length, dilation in shapes:
                for batch in (1, 4):  # sampling one clip and training: both tile configs
                    x = torch.empty(batch, cin, length, dtype=dtype)
                    w = torch.empty(cout, cin, 3, dtype=dtype)
                    bias = torch.empty(cout, dtype=dtype)
                    gamma = torch.empty(cin)
                    y, mean, rstd = gn_silu_dilated_conv_fwd.gn_silu_dilated_conv_fwd(
                        x, w, bias, dilation, gamma, gamma, 32
                    )
                    gn_silu_dilated_conv_bwd.gn_silu_dilated_conv_bwd(
                        y, x, w, dilation, mean, rstd, gamma, gamma, 32
                    )
                    spills += _report(f"conv {tag} {cin}->{cout} L{length} d{dilation} B{batch}")
    return spills


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kernels", nargs="+", choices=["rsmma", "conv"], default=["rsmma", "conv"]
    )
    parser.add_argument(
        "--dtypes", nargs="+", choices=["bfloat16", "float16", "float32"],
        default=["bfloat16", "float16", "float32"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    dtypes = [getattr(torch, n) for n in args.dtypes]
    print(f"triton {triton.__version__}, torch {torch.__version__}, target sm_90")
    spills = 0
    if "rsmma" in args.kernels:
        spills += check_rsmma(dtypes)
    if "conv" in args.kernels:
        spills += check_conv(dtypes)
    print(f"{spills} launches spill")
    return 1 if spills else 0


if __name__ == "__main__":
    sys.exit(main())
