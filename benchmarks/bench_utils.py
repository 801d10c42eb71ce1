"""Shared helpers of the benchmark suites: device, timing, FLOP counts, ceilings, the model's real
shapes. (Importable as `bench_utils`: pytest puts benchmarks/ on sys.path.)"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import pytest
import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ON_GPU = DEVICE.type == "cuda"
# A wall-clock deadline (epoch seconds) after which remaining cases skip: the GPU check's budget.
DEADLINE = float(os.environ.get("MMFAST_BENCH_DEADLINE", "inf"))
# Largest dense score matrix (bytes) the masked-attention baselines may allocate.
DENSE_LIMIT = float(os.environ.get("MMFAST_BENCH_DENSE_LIMIT", 24e9 if ON_GPU else 3e9))
ROUNDS = int(os.environ.get("MMFAST_BENCH_ROUNDS", 10 if ON_GPU else 3))
WARMUP = int(os.environ.get("MMFAST_BENCH_WARMUP", 2 if ON_GPU else 1))
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def sync() -> None:
    if ON_GPU:
        torch.cuda.synchronize()


def check_deadline() -> None:
    if time.time() > DEADLINE:
        pytest.skip("the run's time budget is spent")


def bench(
    benchmark, fn, *, flops: float | None = None, ceilings: dict[str, float] | None = None
) -> None:
    """Time `fn` (device synchronised inside the timed call) and record TFLOP/s, its ratio to each
    ceiling (TFLOP/s) and the peak device memory in `extra_info`."""
    check_deadline()

    def run():
        fn()
        sync()

    if ON_GPU:
        torch.cuda.reset_peak_memory_stats()
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    median = benchmark.stats.stats.median
    info = benchmark.extra_info
    info["device"] = torch.cuda.get_device_name() if ON_GPU else "cpu"
    if ON_GPU:
        info["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if flops is not None:
        info["gflop"] = flops / 1e9
        info["tflops"] = flops / median / 1e12
        for name, ceiling in (ceilings or {}).items():
            info[f"frac_of_{name}"] = info["tflops"] / ceiling


def attention_flops(b: int, h: int, lq: int, keys_per_query: int, d: int, mode: str) -> float:
    """Useful FLOPs of attention: 2 matmuls of 2*Lq*keys*D each forward; backward 2.5x forward
    (5 matmuls, FlashAttention's accounting). Masked-out pairs are not counted."""
    fwd = 4.0 * b * h * lq * keys_per_query * d
    return fwd if mode == "fwd" else 3.5 * fwd


def conv_flops(b: int, cin: int, cout: int, length: int, k: int, mode: str) -> float:
    """2*B*Cout*L*Cin*k forward; backward (input and weight gradients) 2x forward."""
    fwd = 2.0 * b * cout * length * cin * k
    return fwd if mode == "fwd" else 3.0 * fwd


@functools.cache
def matmul_ceiling() -> float:
    """TFLOP/s of a large bf16 matmul on this device (the arithmetic ceiling), measured once."""
    import triton.testing

    n = 8192
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    ms = triton.testing.do_bench(lambda: a @ b, warmup=50, rep=300, return_mode="median")
    return 2 * n**3 / (ms * 1e-3) / 1e12


@functools.cache
def flash_ceiling(
    b: int, h: int, lq: int, keys_per_query: int, d: int, dtype: str, mode: str
) -> float:
    """TFLOP/s of SDPA's flash backend on the dense problem with the same query-key pairs."""
    import triton.testing
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dt = DTYPES[dtype]
    q = torch.randn(b, h, lq, d, device=DEVICE, dtype=dt, requires_grad=mode != "fwd")
    k = torch.randn(b, h, keys_per_query, d, device=DEVICE, dtype=dt, requires_grad=mode != "fwd")
    v = torch.randn_like(k, requires_grad=mode != "fwd")

    def run():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            if mode != "fwd":
                out.backward(torch.ones_like(out))

    ms = triton.testing.do_bench(run, warmup=25, rep=100, return_mode="median")
    return attention_flops(b, h, lq, keys_per_query, d, mode) / (ms * 1e-3) / 1e12


@dataclass(frozen=True)
class AttentionShape:
    """One RS-MMA attention of the model: queries of one modality, keys of the other."""

    level: str  # "32x32", "16x16", "8x8", "middle"
    direction: str  # "v2a": video queries, audio keys; "a2v": the reverse
    heads: int
    q_per_segment: int
    k_per_segment: int
    window: int
    segments: int = 16
    head_dim: int = 64

    @property
    def name(self) -> str:
        return f"{self.level}-{self.direction}"


def model_shapes(preset: str = "mmdiffusion-64"):
    """(RS-MMA attentions, audio convs) of a model preset, read off a forward pass on the meta
    device: attentions as AttentionShape, convs as (Cin, Cout, L, dilation)."""
    from mmfast.models import CoupledUNet

    with torch.device("meta"):
        model = CoupledUNet(preset)
    cfg = model.config
    convs, attns = [], []
    hooks = []
    from mmfast.models.resblock import ResBlock

    for mod in model.modules():
        if isinstance(mod, ResBlock):  # its audio in-path: GN -> SiLU -> conv on its audio input
            hooks.append(
                mod.register_forward_pre_hook(
                    lambda m, inp: convs.append(
                        (inp[1].shape[1], m.audio_in_conv.out_channels, inp[1].shape[2], m.dilation)
                    )
                )
            )
    from mmfast.models.rsmma import CrossModalAttention

    for mod in model.modules():
        if isinstance(mod, CrossModalAttention):

            def hook(m, inp, out):
                video, audio = inp[0], inp[1]
                f, hw, length = video.shape[2], video.shape[3] * video.shape[4], audio.shape[2]
                level = "middle" if m.window is None else f"{video.shape[3]}x{video.shape[4]}"
                w = f if m.window is None else m.window
                attns.append(
                    AttentionShape(
                        level, "v2a", m.heads, hw, length // f, w, f, video.shape[1] // m.heads
                    )
                )
                attns.append(
                    AttentionShape(
                        level, "a2v", m.heads, length // f, hw, w, f, video.shape[1] // m.heads
                    )
                )

            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        video = torch.empty(
            1, cfg.video_frames, cfg.video_channels, cfg.video_size, cfg.video_size, device="meta"
        )
        audio = torch.empty(1, cfg.audio_channels, cfg.audio_length, device="meta")
        model(video, audio, torch.zeros(1, device="meta"), shift=0)
    for h in hooks:
        h.remove()
    return list(dict.fromkeys(attns)), list(dict.fromkeys(convs))
