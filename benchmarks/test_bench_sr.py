"""The super-resolution stage: sampling one clip (its 16 frames in one batch, DDIM on the release's
times) and one training step (hybrid loss, forward + backward + AdamW).

Rows: release-style execution (eager fp32, the release's attention: einsum scores and an fp32
softmax in its own tensor), eager fp32 and bf16 with SDPA, and torch.compile + bf16 (CUDA). On
the GPU: `sr-256` at its real size, 25 steps per clip (the release's), batch 6 per training step
(the release's per-GPU batch); on the CPU: `tiny-sr` (32 -> 128), 5 steps per clip, batch 2.
"""

from __future__ import annotations

import contextlib
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from bench_utils import DEVICE, ON_GPU, bench, matmul_ceiling
from torch.utils.flop_counter import FlopCounterMode

from mmfast.diffusion import NoiseSchedule, hybrid_loss, super_resolve
from mmfast.models import SuperResUNet, get_sr_config
from mmfast.models.sr_unet import SRAttention

PRESET, CLIP_STEPS, TRAIN_BATCH = ("sr-256", 25, 6) if ON_GPU else ("tiny-sr", 5, 2)
FRAMES = 16
# (name, release-style attention, autocast dtype or None, compile)
RECIPES = [
    ("release-eager-fp32", True, None, False),
    ("eager-fp32", False, None, False),
    ("eager-bf16", False, torch.bfloat16, False),
    ("compile-bf16", False, torch.bfloat16, True),
]


def release_attention(self: SRAttention, x: torch.Tensor) -> torch.Tensor:
    """The release's attention block as it computed it (1x1 Conv1d projections, per-head q|k|v
    split, einsum scores scaled by d^-1/4 on each side, softmax in fp32, einsum output)."""
    b, c, h, w = x.shape
    tokens = self.norm(x).reshape(b, c, h * w)
    qkv = F.conv1d(tokens, self.qkv.weight[..., None], self.qkv.bias)
    d = c // self.heads
    q, k, v = qkv.reshape(b * self.heads, 3 * d, h * w).split(d, dim=1)
    scale = 1 / math.sqrt(math.sqrt(d))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, h * w)
    out = F.conv1d(a, self.proj_out.weight[..., None], self.proj_out.bias)
    return x + out.reshape(b, c, h, w)


@contextlib.contextmanager
def attention_as_released(enabled: bool):
    if not enabled:
        yield
        return
    original = SRAttention.forward
    SRAttention.forward = release_attention
    try:
        yield
    finally:
        SRAttention.forward = original


@functools.cache
def forward_flops(batch: int) -> float:
    cfg = get_sr_config(PRESET)
    with torch.device("meta"):
        model = SuperResUNet(cfg)
        x = torch.empty(batch, 3, cfg.large_size, cfg.large_size)
        low = torch.empty(batch, 3, cfg.small_size, cfg.small_size)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x, torch.zeros(batch), low)
    return float(counter.get_total_flops())


def _setup(recipe):
    name, release, amp, compile_ = recipe
    if compile_ and not ON_GPU:
        pytest.skip("compiled rows on CUDA only (Inductor's CPU build takes minutes here)")
    torch.manual_seed(0)
    model = SuperResUNet(PRESET).to(DEVICE)
    g = torch.Generator().manual_seed(0)
    with (
        torch.no_grad()
    ):  # random weights: the zero-initialised outputs would shortcut nothing, but
        for p in model.parameters():  # keep every layer's arithmetic real
            p.copy_((torch.randn(p.shape, generator=g) * 0.02).to(DEVICE))
    forward = torch.compile(model, fullgraph=True) if compile_ else model
    if release:
        _check_release_attention()
    return model, forward, amp, release


@functools.cache
def _check_release_attention() -> None:
    """The release-style row computes what the model computes (checked once per run)."""
    block = SRAttention(64, 4, 8)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        x = torch.randn(2, 64, 8, 8, generator=g)
        torch.testing.assert_close(release_attention(block, x), block(x), rtol=1e-5, atol=1e-5)


def _autocast(amp):
    return torch.autocast(DEVICE.type, dtype=amp or torch.float32, enabled=amp is not None)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r[0] for r in RECIPES])
def test_sample_one_clip(benchmark, recipe):
    model, forward, amp, release = _setup(recipe)
    cfg = model.config
    benchmark.group = f"sr sample clip {PRESET} {FRAMES} frames ddim-{CLIP_STEPS}"
    model.eval()
    low = torch.rand(FRAMES, 3, cfg.small_size, cfg.small_size, device=DEVICE) * 2 - 1

    def run():
        with attention_as_released(release), _autocast(amp):
            super_resolve(
                lambda x, t, lo: forward(x, t, lo),
                low,
                cfg.large_size,
                steps=CLIP_STEPS,
                group=FRAMES,
                generator=torch.Generator().manual_seed(1),
            )

    try:
        with torch.no_grad(), attention_as_released(release), _autocast(amp):
            forward(torch.zeros(FRAMES, 3, cfg.large_size, cfg.large_size, device=DEVICE),
                    torch.zeros(FRAMES, device=DEVICE), low)  # fmt: skip
    except (RuntimeError, NotImplementedError, torch._dynamo.exc.BackendCompilerFailed) as err:
        pytest.skip(f"{recipe[0]} failed: {str(err).splitlines()[0][:160]}")
    flops = CLIP_STEPS * forward_flops(FRAMES)
    bench(
        benchmark, run, flops=flops, ceilings={"matmul_bf16": matmul_ceiling()} if ON_GPU else None
    )
    benchmark.extra_info.update(recipe=recipe[0], model=PRESET, frames=FRAMES, steps=CLIP_STEPS)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r[0] for r in RECIPES])
def test_train_step(benchmark, recipe):
    model, forward, amp, release = _setup(recipe)
    cfg = model.config
    benchmark.group = f"sr train-step {PRESET} B{TRAIN_BATCH}"
    model.train()
    g = torch.Generator().manual_seed(2)
    high = (torch.rand(TRAIN_BATCH, 3, cfg.large_size, cfg.large_size, generator=g) * 2 - 1).to(
        DEVICE
    )
    low = F.avg_pool2d(high, cfg.large_size // cfg.small_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = NoiseSchedule.linear().to(DEVICE)
    gen = torch.Generator(device=DEVICE).manual_seed(3)

    def step():
        with attention_as_released(release), _autocast(amp):
            loss = hybrid_loss(lambda x, t: forward(x, t, low), high, schedule, generator=gen).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    try:
        step()  # compile outside the timing
    except (RuntimeError, NotImplementedError, torch._dynamo.exc.BackendCompilerFailed) as err:
        pytest.skip(f"{recipe[0]} failed: {str(err).splitlines()[0][:160]}")
    bench(
        benchmark,
        step,
        flops=3 * forward_flops(TRAIN_BATCH),
        ceilings={"matmul_bf16": matmul_ceiling()} if ON_GPU else None,
    )
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        recipe=recipe[0], model=PRESET, batch=TRAIN_BATCH, samples_per_s=TRAIN_BATCH / median
    )
