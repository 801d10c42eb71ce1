"""A config field that is also a command-line option: its help, its flag and the values it takes.

`mmfast train` builds its options from TrainConfig's fields (see `mmfast/cli/train.py`), so one
field written with `option(...)` is one new flag. Enum-typed fields become choices of their
values; `bool` fields become switches; numbers are checked against their `Bound`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bound:
    """The numbers an option takes: `kind` parses, `test` accepts, `expected` names them."""

    kind: type
    test: Callable[[Any], bool]
    expected: str


POSITIVE_INT = Bound(int, lambda x: x >= 1, "a positive integer")
NONNEGATIVE_INT = Bound(int, lambda x: x >= 0, "an integer >= 0")
POSITIVE = Bound(float, lambda x: x > 0 and x != float("inf"), "a positive number")
NONNEGATIVE = Bound(float, lambda x: x >= 0 and x != float("inf"), "a number >= 0")
PROBABILITY = Bound(float, lambda x: 0.0 <= x <= 1.0, "a probability in [0, 1]")
EMA_RATE = Bound(float, lambda x: 0.0 <= x < 1.0, "an EMA rate in [0, 1)")


@dataclass(frozen=True)
class Option:
    """How a field shows on the command line. `flag` defaults to --field-name; `stages` are the
    training stages ("base", "sr") whose command has it; `zero_is_none` maps 0 to None
    (`--grad-clip 0` disables clipping)."""

    help: str
    flag: str | None = None
    bound: Bound | None = None
    stages: tuple[str, ...] = ("base", "sr")
    zero_is_none: bool = False


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    bound: Bound | None = None,
    stages: tuple[str, ...] = ("base", "sr"),
    zero_is_none: bool = False,
) -> Any:
    """A dataclass field with default `default` that `mmfast train` offers as an option."""
    meta = {"option": Option(help, flag, bound, stages, zero_is_none)}
    return dataclasses.field(default=default, metadata=meta)
