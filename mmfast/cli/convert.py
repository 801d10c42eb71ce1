"""`mmfast convert-official IN.pt OUT.safetensors`: an original MM-Diffusion checkpoint to ours."""

from __future__ import annotations

import argparse

from mmfast.cli.options import UsageError, option, writable_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-official",
        help="convert an original MM-Diffusion checkpoint (.pt) to an mmfast model file (.safetensors)",
    )
    p.add_argument(
        "source", help="the release's state dict (.pt): MultimodalUNet, or with --sr the SR model"
    )
    p.add_argument("dest", help="output .safetensors file (weights + config)")
    p.add_argument(
        "--sr",
        action="store_true",
        help="the checkpoint is the release's super-resolution model (ImageSuperResModel)",
    )
    p.add_argument(
        "--preset",
        help="model preset the checkpoint was trained with (default: mmdiffusion-64, with --sr "
        "sr-256)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfast.models import CoupledUNet, SuperResUNet, load_model
    from mmfast.models.config import PRESETS
    from mmfast.models.official import read_official_state_dict
    from mmfast.models.sr_config import SR_PRESETS

    presets = SR_PRESETS if args.sr else PRESETS
    preset = args.preset or ("sr-256" if args.sr else "mmdiffusion-64")
    if preset not in presets:
        raise UsageError(f"--preset {preset}: expected one of {', '.join(presets)}")
    if not args.dest.endswith(".safetensors"):
        raise UsageError(f"DEST {args.dest}: expected a file name ending in .safetensors")
    dest = writable_file("DEST", args.dest)
    with option("SOURCE", args.source):
        kind = SuperResUNet if args.sr else CoupledUNet
        model = load_model(read_official_state_dict(args.source), kind=kind, config=preset)
    model.save(dest)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {dest}: {type(model).__name__}, {n:,} parameters, preset {preset}")
    return 0
