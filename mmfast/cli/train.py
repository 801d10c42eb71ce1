"""`mmfast train` / `mmfast train-sr`: train the coupled U-Net or the super-resolution U-Net
(resuming when the run directory holds a checkpoint); one trainer, two tasks."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import typing

from mmfast.cli.options import UsageError, number, option, writable_folder
from mmfast.train.config import TrainConfig
from mmfast.train.option import Option


def add_parser(sub: argparse._SubParsersAction) -> None:
    base = sub.add_parser(
        "train",
        help="train the coupled U-Net on a folder of videos with sound (default: synthetic data)",
    )
    _add_options(base, "base", "tiny", "demo, tiny or mmdiffusion-64 (the release's recipe)")
    sr = sub.add_parser(
        "train-sr",
        help="train the 64->256 super-resolution U-Net on the frames of a video folder",
    )
    _add_options(sr, "sr", "tiny-sr", "tiny-sr or sr-256 (the release's recipe)")


def config_options(stage: str) -> list[tuple[dataclasses.Field, Option]]:
    """TrainConfig's fields that are options of the command of `stage` ("base" or "sr")."""
    fields = [(f, f.metadata.get("option")) for f in dataclasses.fields(TrainConfig)]
    return [(f, opt) for f, opt in fields if opt is not None and stage in opt.stages]


def _add_options(p: argparse.ArgumentParser, stage: str, preset: str, presets: str) -> None:
    p.add_argument(
        "--out",
        required=True,
        help="run directory (checkpoints, logs); resumes if it holds a checkpoint",
    )
    p.add_argument("--preset", default=preset, help=f"training preset: {presets}")
    hints = typing.get_type_hints(TrainConfig)
    for field, opt in config_options(stage):
        flag = opt.flag or "--" + field.name.replace("_", "-")
        kind = _unwrap_optional(hints[field.name])
        kwargs: dict = {"dest": field.name, "default": None, "help": opt.help}
        if kind is bool:
            kwargs["action"] = "store_true"
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            kwargs["choices"] = [m.value for m in kind]
        elif opt.bound is not None:
            kwargs["type"] = number(opt.bound)
        p.add_argument(flag, **kwargs)
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: each process's GPU when CUDA is available, else the CPU",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, stage=stage)


def _unwrap_optional(hint: object) -> object:
    """`X | None` -> X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def config_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The TrainConfig fields the command line set."""
    overrides = {}
    for field, opt in config_options(args.stage):
        value = getattr(args, field.name)
        if value is None:
            continue
        overrides[field.name] = None if opt.zero_is_none and value == 0 else value
    return overrides


def run(args: argparse.Namespace) -> int:
    import os
    import warnings
    from pathlib import Path

    from mmfast.cli.options import parse_device
    from mmfast.data import MediaWarning
    from mmfast.train import TRAIN_PRESETS, get_train_config, train
    from mmfast.train.checkpoint import check_resumable
    from mmfast.train.trainer import CHECKPOINT, build_dataset

    presets = [n for n, c in TRAIN_PRESETS.items() if c.stage == args.stage]
    if args.preset not in presets:
        raise UsageError(f"--preset {args.preset}: expected one of {', '.join(presets)}")
    if args.data is not None and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    device = parse_device(args.device)
    config = get_train_config(args.preset, **config_overrides(args))
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
