"""`mmfast train` / `mmfast train-sr`: train the coupled U-Net or the super-resolution U-Net
(resuming when the run directory holds a checkpoint); one trainer, two tasks."""

from __future__ import annotations

import argparse

from mmfast.cli.options import (
    UsageError,
    ema_rate,
    nonnegative_float,
    nonnegative_int,
    option,
    positive_float,
    positive_int,
    probability,
    writable_folder,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    base = sub.add_parser(
        "train",
        help="train the coupled U-Net on a folder of videos with sound (default: synthetic data)",
    )
    _add_options(base, "tiny", "demo, tiny or mmdiffusion-64 (the release's recipe)")
    base.add_argument(
        "--prediction",
        choices=["eps", "v", "x0"],
        help="what the model predicts: eps (the release; its checkpoints need it), v or x0",
    )
    base.add_argument(
        "--loss-weighting",
        choices=["uniform", "min-snr"],
        dest="loss_weighting",
        help="timestep weights: uniform (the release) or min(SNR, gamma) (Hang et al. 2023)",
    )
    base.add_argument(
        "--min-snr-gamma", type=positive_float, dest="min_snr_gamma", help="gamma of min-snr"
    )
    sr = sub.add_parser(
        "train-sr",
        help="train the 64->256 super-resolution U-Net on the frames of a video folder",
    )
    _add_options(sr, "tiny-sr", "tiny-sr or sr-256 (the release's recipe)")


def _add_options(p: argparse.ArgumentParser, preset: str, presets: str) -> None:
    p.add_argument(
        "--out",
        required=True,
        help="run directory (checkpoints, logs); resumes if it holds a checkpoint",
    )
    p.add_argument(
        "--data", default=None, help="folder of .mp4/.mkv/.webm/.avi files; omit for synthetic data"
    )
    p.add_argument("--preset", default=preset, help=f"training preset: {presets}")
    p.add_argument("--steps", type=positive_int, help="total steps of the run")
    p.add_argument("--batch-size", type=positive_int, help="clips per process and step")
    p.add_argument("--lr", type=positive_float, help="AdamW learning rate")
    p.add_argument(
        "--warmup-steps",
        type=nonnegative_int,
        dest="warmup_steps",
        help="linear learning-rate warmup over this many steps",
    )
    p.add_argument(
        "--ema",
        type=ema_rate,
        dest="ema_rate",
        help="EMA rate (default 0.9999 for the release preset)",
    )
    p.add_argument("--grad-clip", type=nonnegative_float, help="gradient norm clip (0 disables)")
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16", "bf16"],
        help="fp16 = autocast + GradScaler (the V100 recipe)",
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument(
        "--activation-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations in backward",
    )
    p.add_argument(
        "--hflip",
        type=probability,
        dest="hflip_p",
        help="horizontal flip probability (folder data)",
    )
    p.add_argument(
        "--resize",
        choices=["letterbox", "center-crop"],
        help="how frames are fitted to the model size",
    )
    p.add_argument("--seed", type=nonnegative_int)
    p.add_argument("--checkpoint-every", type=positive_int, help="steps between checkpoints")
    p.add_argument("--log-every", type=positive_int, help="steps between log lines")
    p.add_argument(
        "--minutes",
        type=positive_float,
        dest="max_minutes",
        help="stop (with a checkpoint) after this wall time",
    )
    p.add_argument(
        "--workers", type=nonnegative_int, dest="num_workers", help="data loader processes"
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: each process's GPU when CUDA is available, else the CPU",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


FIELDS = (
    "data",
    "steps",
    "batch_size",
    "lr",
    "ema_rate",
    "grad_clip",
    "precision",
    "compile",
    "activation_checkpointing",
    "hflip_p",
    "resize",
    "seed",
    "checkpoint_every",
    "log_every",
    "max_minutes",
    "num_workers",
    "warmup_steps",
    "prediction",
    "loss_weighting",
    "min_snr_gamma",
)


def run(args: argparse.Namespace) -> int:
    import os
    import warnings
    from pathlib import Path

    from mmfast.cli.options import parse_device
    from mmfast.data import MediaWarning
    from mmfast.train import TRAIN_PRESETS, get_train_config, train
    from mmfast.train.checkpoint import check_resumable
    from mmfast.train.trainer import CHECKPOINT, build_dataset

    stage = "sr" if args.command == "train-sr" else "base"
    presets = [n for n, c in TRAIN_PRESETS.items() if c.stage == stage]
    if args.preset not in presets:
        raise UsageError(f"--preset {args.preset}: expected one of {', '.join(presets)}")
    if args.data is not None and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    device = parse_device(args.device)
    overrides = {k: getattr(args, k, None) for k in FIELDS}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("grad_clip") == 0:
        overrides["grad_clip"] = None
    config = get_train_config(args.preset, **overrides)
    out = writable_folder("--out", args.out)
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        with option("--out", out):
            check_resumable(checkpoint, config)
    dataset = None
    if args.data is not None:
        with option("--data", args.data), warnings.catch_warnings():
            if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 names the skipped files
                warnings.simplefilter("ignore", MediaWarning)
            dataset = build_dataset(config, config.model_config(), out)
    result = train(
        config, out, progress=not args.no_progress, dataset=dataset, device_type=device.type
    )
    if not result.is_main:
        return 0
    print(
        f"stopped at step {result.step}: loss {result.last_loss:.4f}, {result.samples_per_second:.2f} samples/s"
    )
    print(f"checkpoint: {result.checkpoint}\nEMA model:  {result.ema_model}")
    return 0
