"""`mmfast plot RUN`: the loss curves of a training run, from its log.jsonl, to a PNG."""

from __future__ import annotations

import argparse

from mmfast.cli.options import UsageError, writable_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a run's loss curves (from its log.jsonl) to a PNG, without TensorBoard",
        description="Loss (total and per modality), loss by timestep quartile, learning rate, "
        "gradient norm, samples/s and data-wait share of a run of `mmfast train` / `train-sr`, "
        "smoothed as TensorBoard does, drawn with matplotlib.",
    )
    p.add_argument("run", help="the run folder (--out of mmfast train)")
    p.add_argument("--out", help="the PNG to write (default: RUN/loss.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmfast.train.plot import plot_run

    if not Path(args.run).is_dir():
        raise UsageError(f"RUN {args.run}: no such folder")
    if args.out is not None and not args.out.lower().endswith(".png"):
        raise UsageError(f"--out {args.out}: expected a file name ending in .png")
    out = writable_file("--out", args.out) if args.out is not None else None
    path = plot_run(args.run, out)
    print(f"wrote {path}")
    return 0
