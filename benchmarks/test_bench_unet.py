"""The whole coupled U-Net: one training step (forward + backward + AdamW) and DPM-Solver sampling.

Rows: release-style execution (eager fp32, the release's per-frame RS-MMA loop), eager fp32 and bf16
with the gather path, and Triton kernels + torch.compile + bf16 (CUDA). On the GPU: `mmdiffusion-64` at its
real size; on the CPU: `tiny`, and `mmdiffusion-64` on a reduced input (8 frames of 32x32, 4096
audio samples). FLOPs are counted once per shape by torch's FlopCounterMode on the meta device
(convolutions, matmuls and attention as computed, i.e. inside the windows); a training step is
counted as 3x the forward.
"""

from __future__ import annotations

import functools

import pytest
import torch
from bench_utils import DEVICE, ON_GPU, bench, matmul_ceiling
from torch.utils.flop_counter import FlopCounterMode

from mmfast.diffusion import diffusion_loss, sample
from mmfast.diffusion.schedule import NoiseSchedule
from mmfast.models import CoupledUNet, get_config
from mmfast.ops import RSMMA_BACKENDS

# (name, preset, overrides, batch)
MODELS = (
    [("mmdiffusion-64", "mmdiffusion-64", {}, 4)]
    if ON_GPU
    else [
        ("tiny", "tiny", {}, 2),
        (
            "mmdiffusion-64@8x32x32",
            "mmdiffusion-64",
            {"video_frames": 8, "video_size": 32, "audio_length": 4096},
            1,
        ),
    ]
)
# (name, attention backend, autocast dtype or None, compile)
RECIPES = [
    ("release-eager-fp32", "release", None, False),
    ("eager-fp32-gather", "gather", None, False),  # separates the attention path from the dtype
    ("eager-bf16-gather", "gather", torch.bfloat16, False),
    ("compile-bf16-triton", "triton", torch.bfloat16, True),
]


def _config(preset, overrides):
    return get_config(preset, **overrides)


@functools.cache
def forward_flops(preset: str, overrides: tuple, batch: int) -> float:
    cfg = _config(preset, dict(overrides))
    with torch.device("meta"):
        model = CoupledUNet(cfg)
        video = torch.empty(batch, cfg.video_frames, 3, cfg.video_size, cfg.video_size)
        audio = torch.empty(batch, 1, cfg.audio_length)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(video, audio, torch.zeros(batch), shift=0)
    return float(counter.get_total_flops())


def _setup(preset, overrides, batch, backend, compile_):
    if backend == "triton" and (not ON_GPU or "triton" not in RSMMA_BACKENDS):
        pytest.skip("the Triton kernels run on CUDA devices only")
    torch.manual_seed(0)
    cfg = _config(preset, overrides)
    model = CoupledUNet(cfg.replace(attention_backend=backend)).to(DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(0)
    video = (
        torch.rand(
            batch, cfg.video_frames, 3, cfg.video_size, cfg.video_size, device=DEVICE, generator=g
        )
        * 2
        - 1
    )
    audio = torch.rand(batch, 1, cfg.audio_length, device=DEVICE, generator=g) * 2 - 1
    forward = torch.compile(model) if compile_ else model
    # Compiled: per-stage shift tensors, one graph for every draw; eager: a fresh draw per call.
    shifts = (
        [torch.full((batch,), r, device=DEVICE) for r in model.draw_shifts(cfg.video_frames)]
        if compile_
        else None
    )
    return cfg, model, forward, video, audio, shifts


@pytest.mark.parametrize("recipe", RECIPES, ids=[r[0] for r in RECIPES])
@pytest.mark.parametrize("model_spec", MODELS, ids=[m[0] for m in MODELS])
def test_train_step(benchmark, model_spec, recipe):
    name, preset, overrides, batch = model_spec
    rname, backend, amp, compile_ = recipe
    benchmark.group = f"unet train-step {name} B{batch}"
    cfg, model, forward, video, audio, shifts = _setup(preset, overrides, batch, backend, compile_)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = NoiseSchedule.linear().to(DEVICE)
    gen = torch.Generator(device=DEVICE).manual_seed(1)

    def step():
        with torch.autocast(DEVICE.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = diffusion_loss(
                lambda v, a, t: forward(v, a, t, shift=shifts),
                video,
                audio,
                schedule,
                generator=gen,
            ).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    try:
        step()  # compile outside the timing
    except (RuntimeError, NotImplementedError, torch._dynamo.exc.BackendCompilerFailed) as err:
        pytest.skip(f"{rname} failed: {str(err).splitlines()[0][:160]}")
    flops = 3 * forward_flops(preset, tuple(sorted(overrides.items())), batch)
    bench(
        benchmark, step, flops=flops, ceilings={"matmul_bf16": matmul_ceiling()} if ON_GPU else None
    )
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(recipe=rname, model=name, batch=batch, samples_per_s=batch / median)


SAMPLE_RECIPES = [r for r in RECIPES if r[0] in ("eager-bf16-gather", "compile-bf16-triton")]


@pytest.mark.parametrize("recipe", SAMPLE_RECIPES, ids=[r[0] for r in SAMPLE_RECIPES])
@pytest.mark.parametrize("model_spec", MODELS, ids=[m[0] for m in MODELS])
def test_sampling_dpm_solver_20(benchmark, model_spec, recipe):
    name, preset, overrides, batch = model_spec
    rname, backend, amp, compile_ = recipe
    benchmark.group = f"unet sample dpm-solver-20 {name} B{batch}"
    cfg, model, forward, video, audio, shifts = _setup(preset, overrides, batch, backend, compile_)
    model.eval()

    def run():
        with torch.autocast(DEVICE.type, dtype=amp or torch.float32, enabled=amp is not None):
            sample(
                lambda v, a, t: forward(v, a, t, shift=shifts),
                video.shape,
                audio.shape,
                sampler="dpm-solver",
                steps=20,
                generator=torch.Generator().manual_seed(0),
                device=DEVICE,
            )

    try:
        with torch.no_grad():
            forward(
                video, audio, torch.zeros(batch, device=DEVICE), shift=shifts
            )  # compile outside the timing
    except (RuntimeError, NotImplementedError, torch._dynamo.exc.BackendCompilerFailed) as err:
        pytest.skip(f"{rname} failed: {str(err).splitlines()[0][:160]}")
    flops = 20 * forward_flops(preset, tuple(sorted(overrides.items())), batch)
    bench(
        benchmark, run, flops=flops, ceilings={"matmul_bf16": matmul_ceiling()} if ON_GPU else None
    )
    benchmark.extra_info.update(recipe=rname, model=name, batch=batch)
