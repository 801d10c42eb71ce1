"""`mmfast train`: train the coupled U-Net (resuming when the run directory holds a checkpoint)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train on a folder of videos with sound (default: built-in synthetic data)"
    )
    p.add_argument(
        "--out",
        required=True,
        help="run directory (checkpoints, logs); resumes if it holds a checkpoint",
    )
    p.add_argument(
        "--data", default=None, help="folder of .mp4/.mkv/.webm/.avi files; omit for synthetic data"
    )
    p.add_argument(
        "--preset",
        default="tiny",
        help="training preset: tiny or mmdiffusion-64 (the release's recipe)",
    )
    p.add_argument("--steps", type=int, help="total steps of the run")
    p.add_argument("--batch-size", type=int, help="clips per process and step")
    p.add_argument("--lr", type=float, help="AdamW learning rate")
    p.add_argument(
        "--ema",
        type=float,
        dest="ema_rate",
        help="EMA rate (default 0.9999 for the release preset)",
    )
    p.add_argument("--grad-clip", type=float, help="gradient norm clip (0 disables)")
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
        "--hflip", type=float, dest="hflip_p", help="horizontal flip probability (folder data)"
    )
    p.add_argument(
        "--resize",
        choices=["letterbox", "center-crop"],
        help="how frames are fitted to the model size",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument(
        "--minutes",
        type=float,
        dest="max_minutes",
        help="stop (with a checkpoint) after this wall time",
    )
    p.add_argument("--workers", type=int, dest="num_workers", help="data loader processes")
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
)


def run(args: argparse.Namespace) -> int:
    from mmfast.train import get_train_config, train

    overrides = {k: getattr(args, k) for k in FIELDS if getattr(args, k) is not None}
    if overrides.get("grad_clip") == 0:
        overrides["grad_clip"] = None
    config = get_train_config(args.preset, **overrides)
    result = train(config, args.out, progress=not args.no_progress)
    print(
        f"stopped at step {result.step}: loss {result.last_loss:.4f}, {result.samples_per_second:.2f} samples/s"
    )
    print(f"checkpoint: {result.checkpoint}\nEMA model:  {result.ema_model}")
    return 0
