"""The `mmfast` command: a thin layer over the Python API, one module per subcommand.

Each subcommand module defines `add_parser(subparsers)` (which sets `func`) and does its imports
inside `run`, so `mmfast --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from mmfast.cli import convert, demo, sample, train

COMMANDS = [train, sample, demo, convert]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmfast", description="Fast MM-Diffusion: joint audio-video generation."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"mmfast {args.command}: error: {err}", file=sys.stderr)
        return 2
