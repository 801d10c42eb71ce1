"""The `mmfast` command: a thin layer over the Python API, one module per subcommand.

Each subcommand module defines `add_parser(subparsers)` (which sets `func`) and does its heavy
imports inside `run`. `mmfast train`'s options are made from `TrainConfig`'s fields, so building
the parser imports the training config (and torch with it): about 2 s of `mmfast --help`.
"""

from __future__ import annotations

import argparse
import os

from mmfast.cli import convert, demo, evaluate, plot, prepare, sample, train
from mmfast.cli.options import Parser, UsageError, print_error

COMMANDS = [prepare, train, sample, demo, evaluate, convert, plot]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mmfast", description="Fast MM-Diffusion: joint audio-video generation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input ends it with one line on stderr and exit code 2
    (MMFAST_TRACEBACK=1 shows the traceback instead)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        if os.environ.get("MMFAST_TRACEBACK") == "1":
            raise
        print_error(args.command, str(err))
        return 2
    except (ValueError, TypeError, FileNotFoundError) as err:
        if os.environ.get("MMFAST_TRACEBACK") == "1":
            raise
        print_error(args.command, " ".join(str(err).split()))
        return 2
