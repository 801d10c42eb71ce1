"""Compile every Triton kernel launch the release model makes (RS-MMA and the fused GroupNorm ->
SiLU -> dilated conv, fp16/bf16/fp32) for one card's architecture on a machine without a GPU, at
the tiles the launchers pick for that card, and report each launch's registers, spill stack and
shared memory against the card's limit.

    python tests/ops/check_compile.py --arch 80 [--kernels rsmma conv] [--dtypes float16 ...]

--arch: 80 (A100), 86 (A10, RTX 3090), 89 (L4, RTX 4090), 90 (H100, H200): a launch fails when it
spills (a non-zero stack) or asks for more shared memory than one block may have. 75 (T4): shared
memory only; below sm_80 the ops never take the Triton backend (`tl.dot` has no tensor-core path
there), so the check only makes sure a direct launch of the kernels still fits the card. Exits 1
if any launch fails.

Not collected by pytest as a whole (tests/ops/test_compile_check.py runs one small slice of it):
it swaps Triton's active driver for a stand-in that reports the target, which leans on Triton
internals (checked with triton 3.6 and 3.8). The launchers run with `warmup`, so nothing is
launched; ptxas (bundled with triton) does the register allocation. fp32 convs are compiled twice:
with TF32 dots (PyTorch's default for convolutions) and with IEEE fp32 ones.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402


@dataclass(frozen=True)
class Card:
    """What the check needs of one architecture: its cards, their SM counts (the conv launchers
    pick tiles by them) and the most shared memory one block may have (the CUDA C++ Programming
    Guide's compute-capability table, "maximum amount of shared memory per thread block": the SM's
    164 / 100 / 228 KB less the 1 KB the system reserves per block on sm_80+)."""

    names: str
    sms: tuple[int, ...]
    smem: int
    registers: bool = True  # whether spills fail the check


CARDS: dict[int, Card] = {
    75: Card("T4", (40,), 64 * 1024, registers=False),
    80: Card("A100", (108,), 163 * 1024),
    86: Card("A10, RTX 3090", (72, 82), 99 * 1024),
    89: Card("L4, RTX 4090", (58, 128), 99 * 1024),
    90: Card("H100, H200", (114, 132), 227 * 1024),
}


class _Driver:
    """Stands in for Triton's CUDA driver: reports the target, never touches a device."""

    def __init__(self, arch: int):
        self.arch = arch

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return GPUTarget("cuda", self.arch, 32)


@dataclass
class Launch:
    label: str
    kernel: str
    blocks: str
    warps: int
    stages: int
    regs: int
    stack: int
    smem: int


class Checker:
    """Compiles the launches for one architecture and collects what ptxas allocated."""

    def __init__(self, arch: int):
        from mmfast.kernels import (
            device,
            gn_silu_conv_bwd,
            gn_silu_conv_fwd,
            gn_silu_conv_stats,
            rsmma_bwd,
            rsmma_fwd,
        )

        self.arch, self.card = arch, CARDS[arch]
        driver.set_active(_Driver(arch))
        self._compiled: list[tuple[str, dict, object]] = []
        self._seen: set[int] = set()
        self.launches: list[Launch] = []
        self.m = dict(
            device=device,
            conv_fwd=gn_silu_conv_fwd,
            conv_bwd=gn_silu_conv_bwd,
            stats=gn_silu_conv_stats,
            rsmma_fwd=rsmma_fwd,
            rsmma_bwd=rsmma_bwd,
        )
        # CPU tensors stand in for the card's: the launchers ask `device` about them.
        device.arch = lambda x: arch
        device.on_device = lambda x: _nothing()
        rsmma_fwd.check_device = lambda t: None
        for module, names in (
            (rsmma_fwd, ["rsmma_fwd_kernel"]),
            (rsmma_bwd, ["rsmma_bwd_kernel_preprocess", "rsmma_bwd_kernel_dkdv", "rsmma_bwd_kernel_dq"]),
            (gn_silu_conv_fwd, ["gn_silu_conv_fwd_kernel"]),
            (gn_silu_conv_stats, ["gn_silu_conv_stats_kernel"]),
            (gn_silu_conv_bwd, [
                "gn_silu_conv_bwd_kernel_dx",
                "gn_silu_conv_bwd_kernel_dx_norm",
                "gn_silu_conv_bwd_kernel_dw",
            ]),
        ):  # fmt: skip
            for name in names:
                kernel = getattr(module, name)
                kernel = kernel.kernel if isinstance(kernel, _Warmup) else kernel
                setattr(module, name, _Warmup(kernel, self._compiled))

    def failures(self, launch: Launch) -> list[str]:
        """Why a launch would not run well on the card: spills, or too much shared memory."""
        why = []
        if self.card.registers and launch.stack:
            why.append(f"spills {launch.stack} B")
        if launch.smem > self.card.smem:
            why.append(f"smem {launch.smem} > {self.card.smem}")
        return why

    def collect(self, label: str) -> int:
        """Record and print the distinct kernels compiled since the last call (one whose compiled
        kernel was recorded before is not repeated); return how many fail."""
        failed = 0
        for name, kw, kernel in self._compiled:
            if id(kernel) in self._seen:
                continue
            self._seen.add(id(kernel))
            regs, stack = _usage(kernel)
            blocks = " ".join(
                f"{k.removeprefix('BLOCK_')}{v}" for k, v in kw.items() if k.startswith("BLOCK")
            )
            launch = Launch(
                label, name, blocks, kw.get("num_warps", 4), kw.get("num_stages", 3), regs, stack,
                kernel.metadata.shared,
            )  # fmt: skip
            self.launches.append(launch)
            why = self.failures(launch)
            failed += bool(why)
            print(
                f"{label:38} {name:40} {blocks:22} warps={launch.warps} stages={launch.stages} "
                f"regs={regs} smem={launch.smem} stack={stack}" + ("  FAIL: " + ", ".join(why) if why else "")
            )  # fmt: skip
        self._compiled.clear()
        return failed

    def rsmma(self, dtypes: list[torch.dtype], shapes=None) -> int:
        """Every RS-MMA launch of the release model (F = 16, D = 64), and the other head dims at
        its shorter levels; shapes: [(head dim, [(SQ, SK, W), ...])] to check instead."""
        fwd, bwd = self.m["rsmma_fwd"], self.m["rsmma_bwd"]
        failed = 0
        for dtype in dtypes:
            for d, cases in shapes or RSMMA_SHAPES:
                for sq, sk, w in cases:
                    q = torch.empty(1, 2, 16 * sq, d, dtype=dtype)
                    k = torch.empty(1, 2, 16 * sk, d, dtype=dtype)
                    out, lse = fwd.rsmma_fwd(q, k, k, 16, w, 3)
                    bwd.rsmma_bwd(out, q, k, k, out, lse, 16, w, 3)
                    failed += self.collect(f"rsmma {str(dtype)[6:]} D{d} SQ{sq} SK{sk} W{w}")
        return failed

    def conv(self, dtypes: list[torch.dtype], shapes=None, batches=(1, 4)) -> int:
        """Every audio conv of the release model at one clip (sampling) and a batch of 4
        (training), on each SM count of the architecture's cards: both tile configs."""
        fwd, bwd, device = self.m["conv_fwd"], self.m["conv_bwd"], self.m["device"]
        failed = 0
        for sms in self.card.sms:
            device.sms = lambda x, sms=sms: sms
            for dtype in dtypes:
                for tf32 in [True, False] if dtype == torch.float32 else [True]:
                    device.allow_tf32_convs = lambda tf32=tf32: tf32
                    tag = str(dtype)[6:] + (
                        "" if dtype != torch.float32 else "-tf32" if tf32 else "-ieee"
                    )
                    for cin, cout, length, dilation in shapes or conv_shapes():
                        for batch in batches:
                            x = torch.empty(batch, cin, length, dtype=dtype)
                            w = torch.empty(cout, cin, 3, dtype=dtype)
                            bias = torch.empty(cout, dtype=dtype)
                            gamma = torch.empty(cin)
                            y, mean, rstd = fwd.gn_silu_conv_fwd(
                                x, w, bias, dilation, gamma, gamma, 32
                            )
                            bwd.gn_silu_conv_bwd(y, x, w, dilation, mean, rstd, gamma, gamma, 32)
                            failed += self.collect(
                                f"conv {tag} {cin}->{cout} L{length} d{dilation} B{batch} SM{sms}"
                            )
        return failed


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class _Warmup:
    """Stands in for a kernel: `kernel[grid](...)` compiles and records instead of launching."""

    def __init__(self, kernel, compiled: list):
        self.kernel, self.compiled = kernel, compiled

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            self.compiled.append(
                (self.kernel.fn.__name__, kwargs, self.kernel.warmup(*args, grid=grid, **kwargs))
            )

        return run


def _usage(kernel) -> tuple[int, int]:
    """(registers per thread, spill stack bytes) of a compiled kernel, from cuobjdump."""
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        out = subprocess.run(
            [cuobjdump, "-res-usage", f.name], capture_output=True, text=True
        ).stdout
    return int(re.search(r"REG:(\d+)", out).group(1)), int(re.search(r"STACK:(\d+)", out).group(1))


# (query tokens, key tokens, window) per segment of the release's RS-MMA blocks (F = 16).
_MODEL = [(400, 1024, 1), (1024, 400, 1), (100, 256, 4), (256, 100, 4), (25, 64, 8), (64, 25, 8)]
RSMMA_SHAPES: list[tuple[int, list[tuple[int, int, int]]]] = [
    (64, _MODEL + [(25, 64, 16), (1, 25, 8), (33, 1, 16)]),
    (128, _MODEL[2:]),
    (32, _MODEL[2:]),
    (16, _MODEL[2:]),
]


# The launches that spilled on sm_80 before the pickers looked at the card: the RS-MMA forward and
# dK/dV at D = 128, dK/dV with 128 keys at D = 64 (Triton 3.6), the conv's short tiles.
SMOKE_RSMMA_SHAPES = [(128, [(256, 100, 4)]), (64, [(100, 256, 4)])]
SMOKE_CONV_SHAPES = [(128, 128, 25600, 2)]


def conv_shapes() -> list[tuple[int, int, int, int]]:
    """(Cin, Cout, L, dilation) of every ResBlock's audio in-path in the release model."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_utils import model_shapes

    return sorted(set(model_shapes()[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, choices=sorted(CARDS), required=True)
    parser.add_argument(
        "--kernels", nargs="+", choices=["rsmma", "conv"], default=["rsmma", "conv"]
    )
    parser.add_argument(
        "--dtypes", nargs="+", choices=["bfloat16", "float16", "float32"],
        default=["bfloat16", "float16", "float32"],
    )  # fmt: skip
    parser.add_argument(
        "--smoke", action="store_true",
        help="only the launches that once spilled on sm_80 (bf16; tests/ops/test_compile_check.py)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    dtypes = [getattr(torch, n) for n in args.dtypes]
    card = CARDS[args.arch]
    print(
        f"triton {triton.__version__}, torch {torch.__version__}, target sm_{args.arch} "
        f"({card.names}: {card.smem} B of shared memory per block"
        + (")" if card.registers else "; spills reported, not failed)")
    )
    shapes = SMOKE_CONV_SHAPES if args.smoke else conv_shapes()  # before any kernel is built
    checker = Checker(args.arch)
    failed = 0
    if args.smoke:
        dtypes = [torch.bfloat16]
    if "rsmma" in args.kernels:
        failed += checker.rsmma(dtypes, SMOKE_RSMMA_SHAPES if args.smoke else None)
    if "conv" in args.kernels:
        failed += checker.conv(dtypes, shapes, (1,) if args.smoke else (1, 4))
    print(f"{len(checker.launches)} distinct launches, {failed} fail on sm_{args.arch}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
