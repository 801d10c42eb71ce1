"""The training loop: AdamW, EMA, clipping, fp32 / fp16 (autocast + GradScaler) / bf16, optional
torch.compile and activation checkpointing, DDP, periodic atomic checkpoints and exact resume."""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from mmfast.diffusion import NoiseSchedule
from mmfast.models.checkpoint_file import CHECKPOINT
from mmfast.precision import Precision
from mmfast.train.checkpoint import load_training_checkpoint, save_training_checkpoint
from mmfast.train.config import TrainConfig
from mmfast.train.data import ClipDataset, Draws, DrawSampler
from mmfast.train.distributed import DistInfo, barrier, setup_distributed, teardown_distributed
from mmfast.train.ema import EMA
from mmfast.train.preview import write_previews
from mmfast.train.progress import TrainProgress
from mmfast.train.seeding import STREAMS, derive_seed
from mmfast.train.tasks import StepInfo, task_for
from mmfast.train.watch import TensorBoardLog, Window, require_tensorboard

EMA_MODEL = "model-ema.safetensors"
LOG = "log.jsonl"


@dataclass
class TrainResult:
    step: int  # steps done in total (the next step to run)
    last_loss: float
    samples_per_second: float
    checkpoint: Path
    ema_model: Path
    model: (
        nn.Module
    )  # the trained module (raw weights) of this process: CoupledUNet or SuperResUNet
    is_main: bool = True  # rank 0 (the process that writes and reports)


def build_dataset(config: TrainConfig, model_cfg, run_dir: Path) -> ClipDataset:
    """The dataset a run of `config` trains on, at the sizes of `model_cfg` (its model's config;
    see `mmfast.train.tasks`)."""
    return task_for(config).build_dataset(config, model_cfg, run_dir)


def _loader(dataset: ClipDataset, config: TrainConfig, info: DistInfo, step: int) -> DataLoader:
    """Batches of this process's draws from its next one: `num_workers` loader processes (default
    0 for synthetic data, 4 for a folder or a clip store), each keeping 4 batches ahead, pinned
    for the copy to a GPU."""
    workers = config.num_workers
    if workers is None:
        workers = 0 if config.data is None else 4
    return DataLoader(
        Draws(dataset, config.seed),
        batch_size=config.batch_size,
        sampler=DrawSampler(step * config.batch_size, info.rank, info.world_size),
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def make_optimizer(model: nn.Module, config: TrainConfig, fused: bool = True) -> torch.optim.AdamW:
    """AdamW with the config's rate, betas and weight decay over the model's parameters (on its
    device). fused: one kernel over all tensors; on the CPU, the per-tensor loop that is torch's
    default there costs several times more for the demo model's 502 small tensors (see
    benchmarks/test_bench_train_step.py)."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
        fused=fused,
    )


def _log(run_dir: Path, record: dict) -> None:
    with open(run_dir / LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    dataset: ClipDataset | None = None,
    stop_at: int | None = None,
    device_type: str | None = None,
) -> TrainResult:
    """Train (or resume, when `run_dir` holds a checkpoint) until `config.steps` (or `stop_at`,
    or `config.max_minutes`); returns where it stopped. Run under torchrun for several processes.
    device_type: "cuda", "cpu" or None (each process's GPU when CUDA is available)."""
    info = setup_distributed(device_type)
    try:
        return _train(config, Path(run_dir), info, progress, dataset, stop_at)
    finally:
        teardown_distributed(info)


def _train(
    config: TrainConfig, run_dir: Path, info: DistInfo, progress: bool, dataset, stop_at
) -> TrainResult:
    started = time.monotonic()
    if config.tensorboard and info.is_main:
        require_tensorboard()  # before the run writes anything
    run_dir.mkdir(parents=True, exist_ok=True)
    device = info.device
    task = task_for(config)
    torch.manual_seed(config.seed)  # the same initial weights in every process
    model = task.build_model(config).to(device)
    optimizer = make_optimizer(model, config)
    ema = EMA(model, config.ema_rate, config.ema_warmup)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == Precision.FP16)

    ckpt = run_dir / CHECKPOINT
    step = 0
    if ckpt.exists():
        meta = load_training_checkpoint(
            ckpt, model=model, ema=ema, optimizer=optimizer, scaler=scaler
        )
        step = int(meta["step"])
        ema.updates = step
        if info.is_main:
            print(f"resuming {ckpt} at step {step}")
        if int(meta["world_size"]) != info.world_size and info.is_main:
            print(
                f"resuming a {meta['world_size']}-process run with {info.world_size}: the data order changes"
            )
    # The data is checked before the run writes anything of its own.
    dataset = dataset if dataset is not None else task.build_dataset(config, model.config, run_dir)
    if step == 0 and info.is_main:
        (run_dir / "train_config.json").write_text(config.to_json())
    batches = iter(_loader(dataset, config, info, step))
    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if info.enabled
        else model
    )
    forward = torch.compile(net) if config.compile else net
    schedule = NoiseSchedule.linear().to(device)
    precision = Precision(config.precision)
    if config.precision == "fp16" and device.type == "cpu" and info.is_main:
        warnings.warn(
            "fp16 on the CPU runs about 8x slower than fp32 (measured on 2 cores; CPUs have few "
            "fp16 kernels): use --precision bf16 or fp32 there",
            stacklevel=3,
        )
    end = min(config.steps, stop_at) if stop_at is not None else config.steps

    bar = None
    if progress and info.is_main:
        max_seconds = None if config.max_minutes is None else 60 * config.max_minutes
        bar = TrainProgress(step, end, max_seconds, started)
    board = TensorBoardLog(run_dir, step) if config.tensorboard and info.is_main else None
    window = Window(device, schedule.num_timesteps)
    last_loss, rate = math.nan, 0.0
    while step < end:
        waiting = time.monotonic()
        batch = [t.to(device, non_blocking=True) for t in next(batches)]
        waited = time.monotonic() - waiting
        model.train()
        torch.manual_seed(
            derive_seed(config.seed, STREAMS["dropout"], info.rank, step)
        )  # dropout masks
        at = StepInfo(config.seed, info.rank, step, device, config.compile)
        with precision.autocast(device.type):
            loss, stats = task.loss(forward, model, batch, schedule, at)
        # Per-sample tensors [B] for the loss by timestep quartile; the rest are scalars.
        timesteps, sample_error = stats.pop("timesteps", None), stats.pop("sample_error", None)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        lr = config.learning_rate(step)
        for group in optimizer.param_groups:  # a function of the step: resumes exactly
            group["lr"] = lr
        logs = (step + 1) % config.log_every == 0 or step + 1 == end
        grad_norm = None
        if config.grad_clip is not None:
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        elif logs:
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for p in model.parameters() if p.grad is not None]
            )
        scaler.step(optimizer)
        scaler.update()
        ema.update(model)
        step += 1
        window.add(batch[0].shape[0] * info.world_size, waited, timesteps, sample_error)

        timed_out = (
            config.max_minutes is not None
            and (time.monotonic() - started) > 60 * config.max_minutes
        )
        if step % config.log_every == 0 or step == end or timed_out:
            last_loss = loss.item()
            parts = {k: v.item() for k, v in stats.items()}
            record = dict(step=step, loss=last_loss, **parts, lr=lr)
            if grad_norm is not None:
                record["grad_norm"] = float(grad_norm)
            record.update(window.close())
            rate = record["samples_per_s"]
            if info.is_main:
                _log(run_dir, record)
                if board is not None:
                    board.write(record)
                if bar is not None:
                    shown = {k: f"{record[k]:.4f}" for k in ("loss", *parts)}
                    bar.update(step, **shown, samples_per_s=f"{rate:.2f}")
        if bar is not None:
            bar.update(step)
        writing = time.monotonic()
        if step % config.checkpoint_every == 0 or step == end or timed_out:
            _checkpoint(run_dir, model, ema, optimizer, scaler, step, config, info)
            if board is not None:
                board.flush()
        if config.sample_every and step % config.sample_every == 0 and info.is_main:
            _preview(run_dir, model, ema, step, config)
        window.exclude(time.monotonic() - writing)
        if timed_out:
            break
    if bar is not None:
        bar.close()
    if board is not None:
        board.close()
    if not (run_dir / CHECKPOINT).exists() or step == 0:
        _checkpoint(run_dir, model, ema, optimizer, scaler, step, config, info)
    return TrainResult(
        step, last_loss, rate, run_dir / CHECKPOINT, run_dir / EMA_MODEL, model, info.is_main
    )


def _preview(run_dir: Path, model, ema: EMA, step: int, config: TrainConfig) -> None:
    """Rank 0 writes preview clips of the EMA weights (the others go on to the next step and wait
    for it in the gradient all-reduce)."""
    averaged = type(model)(model.config).to(next(model.parameters()).device)
    ema.copy_to(averaged)
    write_previews(averaged, run_dir, step, seed=config.seed, fps=config.fps)


def _checkpoint(
    run_dir: Path, model, ema, optimizer, scaler, step: int, config: TrainConfig, info: DistInfo
) -> None:
    """Rank 0 writes the training checkpoint and the EMA weights as a model file; all wait."""
    if info.is_main:
        save_training_checkpoint(
            run_dir / CHECKPOINT,
            model=model,
            ema=ema,
            optimizer=optimizer,
            scaler=scaler,
            step=step,
            train_config_json=config.to_json(),
            world_size=info.world_size,
        )
        averaged = type(model)(model.config)
        ema.copy_to(averaged)
        averaged.save(run_dir / EMA_MODEL)
    barrier(info)
