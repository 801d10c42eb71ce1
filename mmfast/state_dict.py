"""Reading a state dict from a .pt/.pth (PyTorch's zip, loaded with weights_only=True: no code
runs) or .safetensors file; every error names the file. Shared by the model loaders and the
evaluation networks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file


class StateDictError(ValueError):
    """A file that does not hold a readable state dict; the message names the file."""


def read_state_dict(
    path: str | Path,
    *,
    what: str,
    allow_globals: Iterable[object] = (),
    error: type[Exception] = StateDictError,
) -> dict[str, object]:
    """The dict stored in `path` (.safetensors, else torch.load with weights_only=True plus
    `allow_globals`); a {"state_dict": {...}} wrapper is unwrapped. A file that cannot be read,
    or holds something else, raises `error` (the caller's error class) naming the file and `what`
    it should be."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            with torch.serialization.safe_globals(list(allow_globals)):
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, a pickle with code in it, a wrong format
        detail = " ".join(str(err).split())[:300]
        raise error(f"{path} is not a readable {what}: {detail}") from err
    if (
        isinstance(state, Mapping)
        and "state_dict" in state
        and isinstance(state["state_dict"], Mapping)
    ):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise error(
            f"{path} holds a {type(state).__name__}; {what} must be a dict of tensors "
            "(name -> tensor)"
        )
    return dict(state)
