"""Weight files of the evaluation networks: found or explained, loaded without unpickling code,
and checked strictly against the module they fill. Nothing here downloads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from torch import Tensor, nn


class WeightFileError(FileNotFoundError):
    """A missing or unusable weight file; the message names the file, what it should be, where
    to get it and which option takes it."""


def require_file(path: str | Path | None, *, what: str, option: str, source: str) -> Path:
    """`path` as a Path if it is a file, else a WeightFileError naming `what` the file is, the
    command-line `option` that takes it and the `source` it comes from."""
    if path is None:
        raise WeightFileError(
            f"{what} is needed: pass it with {option} (mmfast never downloads weights; get it "
            f"from {source})"
        )
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{option} {path}: no such file; expected {what} (from {source})")
    return path


def load_strict(
    module: nn.Module,
    state: Mapping[str, object],
    *,
    path: str | Path,
    what: str,
    optional: Iterable[str] = (),
) -> None:
    """Fill `module` from `state`, which must hold exactly its keys (those in `optional` may be
    missing) with the same shapes and dtypes; otherwise a WeightFileError that lists what
    differs."""
    expected = module.state_dict()
    optional = set(optional)
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    wrong = []
    for key, value in state.items():
        if key not in expected:
            continue
        want = expected[key]
        if not isinstance(value, Tensor):
            wrong.append(f"{key}: a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(want.shape) or value.dtype != want.dtype:
            wrong.append(
                f"{key}: {list(value.shape)} {value.dtype}, expected {list(want.shape)} {want.dtype}"
            )
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong", wrong)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        raise WeightFileError(f"{path}: not {what}: " + "; ".join(parts))
    absent = {k: v for k, v in expected.items() if k not in state}
    module.load_state_dict({**absent, **state}, strict=True)
