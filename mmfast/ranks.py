"""Work over the processes torchrun starts (evaluation, sampling): split by rank, results gathered
on rank 0.

Nothing here starts a process group; with none initialised (one process) every helper is the
identity, so the same code runs alone and under torchrun.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, the number of processes) of the default group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def from_rank0(fn: Callable[[], T]) -> T:
    """`fn()` run on rank 0 only and its value (or the exception it raised) handed to every rank,
    so that a bad folder ends all processes with the same error instead of leaving them waiting."""
    rank, world = rank_and_world()
    if world == 1:
        return fn()
    box: list[object] = [None]
    if rank == 0:
        try:
            box[0] = (True, fn())
        except Exception as err:  # re-raised on every rank below
            box[0] = (False, err)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def gather_to_rank0(obj: T) -> list[T] | None:
    """Every rank's `obj`, in rank order, on rank 0; None on the others."""
    rank, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list[object] | None = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out
