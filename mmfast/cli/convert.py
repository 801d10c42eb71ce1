"""`mmfast convert-official IN.pt OUT.safetensors`: an original MM-Diffusion checkpoint to ours."""

from __future__ import annotations

import argparse

from mmfast.cli.options import UsageError, option, writable_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-official",
        help="convert an original MM-Diffusion checkpoint (.pt) to an mmfast model file (.safetensors)",
    )
    p.add_argument("source", help="the release's MultimodalUNet state dict (.pt)")
    p.add_argument("dest", help="output .safetensors file (weights + config)")
    p.add_argument(
        "--preset", default="mmdiffusion-64", help="model preset the checkpoint was trained with"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfast.models.config import PRESETS
    from mmfast.models.official import load_official

    if args.preset not in PRESETS:
        raise UsageError(f"--preset {args.preset}: expected one of {', '.join(PRESETS)}")
    if not args.dest.endswith(".safetensors"):
        raise UsageError(f"DEST {args.dest}: expected a file name ending in .safetensors")
    dest = writable_file("DEST", args.dest)
    with option("SOURCE", args.source):
        model = load_official(args.source, args.preset)
    model.save(dest)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {dest}: {n:,} parameters, preset {args.preset}")
    return 0
