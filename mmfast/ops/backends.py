"""Backend choice of every op (RS-MMA, the GroupNorm -> SiLU -> dilated conv): one kind of backend
and one selection rule.

A backend is a name, the function that runs it, a `why_not` that says why it cannot run given
inputs (None when it can) and a priority: `auto` takes the runnable backend of highest priority;
a backend without one runs only when asked for by name. Each op lists its backends in one table,
written out in its module; nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """One implementation of an op.

    `why_not(*inputs, explicit=...)` returns None when the backend can run these inputs, else the
    reason; `explicit` is False when `auto` asks, so a backend can refuse `auto` what it would do
    when named (the Triton interpreter on a CPU, say).
    """

    name: str
    fn: Callable
    why_not: Callable[..., str | None]
    priority: int | None = None


def select_backend(op: str, backends: Mapping[str, Backend], backend: str, *inputs) -> Backend:
    """The backend of `backends` that runs `inputs` (the op's tensors and settings its backends'
    `why_not` take): the one named, or for "auto" the runnable one of highest priority. Raises
    ValueError naming the op and every reason when none can."""
    if backend != "auto":
        if backend not in backends:
            raise ValueError(
                f"unknown backend {backend!r}; expected 'auto' or one of {sorted(backends)}"
            )
        reason = backends[backend].why_not(*inputs, explicit=True)
        if reason is not None:
            raise ValueError(f"backend {backend!r} cannot run these inputs: {reason}")
        return backends[backend]
    reasons = []
    ranked = sorted((b for b in backends.values() if b.priority is not None), key=_priority)
    for candidate in ranked:
        reason = candidate.why_not(*inputs, explicit=False)
        if reason is None:
            return candidate
        reasons.append(f"{candidate.name}: {reason}")
    raise ValueError(f"no {op} backend can run these inputs: " + "; ".join(reasons))


def _priority(backend: Backend) -> int:
    return -backend.priority
