"""Choices are str-valued enums; at the edges (CLI, JSON configs, function arguments) their string
values are accepted too, and anything else is refused with the values that would do."""

from __future__ import annotations

import enum
from typing import TypeVar


class Choice(str, enum.Enum):
    """A str-valued enum that prints as its value (as Python 3.11's StrEnum, on 3.10 too), so
    messages, JSON and command lines show "eps", never "Prediction.EPS"."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


E = TypeVar("E", bound=Choice)


def choice(kind: type[E], value: E | str, name: str) -> E:
    """`value` as a member of `kind` (a member or its string value), else a ValueError naming
    `name` and the values that would do."""
    try:
        return kind(value)
    except ValueError:
        values = tuple(m.value for m in kind)
        raise ValueError(f"{name} must be one of {values}, got {value!r}") from None
