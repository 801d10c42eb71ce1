"""What the subcommands share: argument types that check their values, the one-line error a user
sees for bad input (exit code 2, no traceback), devices and output folders checked before any work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from mmfast.train import option as bounds
from mmfast.train.option import Bound

# Errors that mean "bad input" when they come out of the library while it handles one option:
# ValueError covers MediaError and safetensors' own errors are re-raised as ValueError there.
INPUT_ERRORS = (ValueError, TypeError, OSError, KeyError)


class UsageError(Exception):
    """Bad input: printed as `mmfast COMMAND: error: MESSAGE`, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (usage stays behind --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(bound: Bound) -> Callable[[str], object]:
    """An argparse type that parses `bound.kind` and refuses what `bound.test` does not accept."""

    def parse(text: str):
        try:
            value = bound.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {bound.expected}, got {text!r}") from None
        if not bound.test(value):
            raise argparse.ArgumentTypeError(f"expected {bound.expected}, got {text!r}")
        return value

    parse.__name__ = bound.expected  # argparse names the type in some messages
    return parse


positive_int = number(bounds.POSITIVE_INT)
nonnegative_int = number(bounds.NONNEGATIVE_INT)
positive_float = number(bounds.POSITIVE)
nonnegative_float = number(bounds.NONNEGATIVE)
probability = number(bounds.PROBABILITY)
ema_rate = number(bounds.EMA_RATE)


@contextlib.contextmanager
def option(name: str, value: object = None) -> Iterator[None]:
    """Report an input error raised inside the block as a UsageError that names the option."""
    try:
        yield
    except INPUT_ERRORS as err:
        label = name if value is None else f"{name} {value}"
        reason = _reason(err)
        if value is not None:  # the file is named once, in the label
            reason = reason.removeprefix(f"{value}: ")
        raise UsageError(f"{label}: {reason}") from err


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    return " ".join(text.split())  # one line


def parse_device(text: str | None):
    """`--device`: None picks CUDA when available, else the CPU; a CUDA device must exist."""
    import torch

    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {text}: expected cpu, cuda or cuda:N, got {text!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {text}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise UsageError(f"--device {text}: expected cpu, cuda or cuda:N, got {text!r}")
    return device


def writable_folder(name: str, path: str | Path) -> Path:
    """Create the output folder `path` now (before minutes of work) and prove it takes files."""
    path = Path(path)
    with option(name, path):
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".mmfast-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    return path


def writable_file(name: str, path: str | Path) -> Path:
    """An output file's folder must take files; the file itself is written atomically later."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{name} {path}: is a folder, expected a file name")
    writable_folder(name, path.parent if str(path.parent) else ".")
    return path


def print_error(command: str, message: str) -> None:
    print(f"mmfast {command}: error: {message}", file=sys.stderr)
