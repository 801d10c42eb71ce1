"""Compile the RS-MMA kernels for sm_90 (H100/H200) on a machine without a GPU and print each
launch's registers, shared memory and spill stack, at the configs the launchers pick.

    python tests/ops/check_rsmma_sm90.py [bfloat16|float16|float32]

Not a test (pytest does not collect it): it swaps Triton's active driver for a stand-in that
reports an sm_90 target, which leans on Triton internals (checked with triton 3.8). The launchers
run with `warmup`, so nothing is launched; ptxas (bundled with triton) does the register allocation.
A non-zero stack means spills.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402


class _Sm90Driver:
    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)


driver.set_active(_Sm90Driver())

from mmfast.kernels import rsmma_bwd, rsmma_fwd  # noqa: E402

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


def main(dtypes: list[torch.dtype]) -> int:
    rsmma_fwd.rsmma_fwd_kernel = _Warmup(rsmma_fwd.rsmma_fwd_kernel)
    for name in ("rsmma_bwd_kernel_preprocess", "rsmma_bwd_kernel_dkdv", "rsmma_bwd_kernel_dq"):
        setattr(rsmma_bwd, name, _Warmup(getattr(rsmma_bwd, name)))
    rsmma_fwd.check_device = lambda t: None  # CPU tensors stand in for CUDA ones
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
                compiled.clear()
                out, lse = rsmma_fwd.rsmma_fwd(q, k, k, 16, w, 3)
                rsmma_bwd.rsmma_bwd(out, q, k, k, out, lse, 16, w, 3)
                for name, kw, kernel in compiled:
                    regs, stack = _usage(kernel)
                    spills += stack > 0
                    blocks = f"BQ{kw.get('BLOCK_Q', '-')} BKV{kw.get('BLOCK_KV', '-')}"
                    print(
                        f"{str(dtype)[6:]:8} D{d:<3} SQ{sq:<4} SK{sk:<4} W{w:<2} {name:28} {blocks:12} "
                        f"warps={kw.get('num_warps', 4)} stages={kw.get('num_stages', 3)} regs={regs} "
                        f"smem={kernel.metadata.shared} stack={stack}"
                    )
    print(f"{spills} launches spill")
    return 0


if __name__ == "__main__":
    names = sys.argv[1:] or ["bfloat16", "float16", "float32"]
    sys.exit(main([getattr(torch, n) for n in names]))
