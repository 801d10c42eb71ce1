"""The training step of a train preset as the trainer runs it: the task's loss (the preset's
prediction target and weighting, a fresh RS-MMA shift draw), backward, gradient clipping, AdamW,
EMA, on a batch of the synthetic clips the preset trains on. CPU fp32.

Rows, measured side by side: `tiny` (what `mmfast demo` trained before it had a preset of its
own: 16 frames of 32x32, 4096 audio samples, batch 4), and `demo` with AdamW's per-tensor loop
(torch's default on the CPU) and with the fused kernel (the trainer's choice). samples/s is in
each row's extra_info. Then AdamW's step alone, loop against fused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from bench_utils import DEVICE, bench
from torch.utils.data import default_collate

from mmfast.diffusion import NoiseSchedule
from mmfast.train import get_train_config
from mmfast.train.data import Draws
from mmfast.train.ema import EMA
from mmfast.train.tasks import StepInfo, task_for
from mmfast.train.trainer import make_optimizer

# (row, train preset, fused AdamW)
ROWS = [
    ("tiny-before", "tiny", False),
    ("demo-loop-adamw", "demo", False),
    ("demo", "demo", True),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_train_step(benchmark, row):
    name, preset, fused = row
    config = get_train_config(preset)
    benchmark.group = "train-step (trainer's step, fp32)"
    task = task_for(config)
    torch.manual_seed(0)
    model = task.build_model(config).to(DEVICE)
    with tempfile.TemporaryDirectory() as run_dir:
        dataset = task.build_dataset(config, model.config, Path(run_dir))
    draws = Draws(dataset, config.seed)
    batch = [t.to(DEVICE) for t in default_collate([draws[i] for i in range(config.batch_size)])]
    optimizer = make_optimizer(model, config, fused=fused)
    ema = EMA(model, config.ema_rate, config.ema_warmup)
    schedule = NoiseSchedule.linear().to(DEVICE)
    state = {"step": 0}

    def step():
        at = StepInfo(config.seed, 0, state["step"], DEVICE, False)
        loss, _ = task.loss(model, model, batch, schedule, at)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate(state["step"])
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        ema.update(model)
        state["step"] += 1

    bench(benchmark, step)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        row=name,
        preset=preset,
        batch=config.batch_size,
        fused_adamw=fused,
        prediction=config.model_config().prediction,
        samples_per_s=config.batch_size / median,
    )


@pytest.mark.parametrize("fused", [False, True], ids=["loop", "fused"])
def test_adamw_step(benchmark, fused):
    """AdamW alone on the demo model's 502 parameter tensors (0.41M values)."""
    config = get_train_config("demo")
    benchmark.group = "adamw-step demo"
    torch.manual_seed(0)
    model = task_for(config).build_model(config).to(DEVICE)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer = make_optimizer(model, config, fused=fused)
    bench(benchmark, optimizer.step)
    benchmark.extra_info.update(fused_adamw=fused, tensors=len(list(model.parameters())))
