"""The JSON metadata of a safetensors file (mmfast's model files and training checkpoints keep
their kind and configs there), read without its tensors; errors name the file."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open


def read_metadata(
    path: str | Path, *, what: str = "file", unreadable: str = "is not a safetensors file"
) -> dict[str, str]:
    """The metadata of the safetensors file `path` ({} when it has none). A missing file is a
    FileNotFoundError naming `what` it should be; an unreadable one a ValueError saying
    `unreadable`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path} {unreadable}: {err}") from err
