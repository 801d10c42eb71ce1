"""PyAV, imported once for every module of `mmfast.data` that reads or writes media files.

The lent GPU image has no PyAV, and training from a clip store or from synthetic clips needs none:
so `mmfast.data` (and through it `mmfast.train`) imports without it, and the first use of a media
function says what is missing instead of failing at import time.
"""

from __future__ import annotations

from typing import Any


class _PyAVMissing:
    """Stands in for the `av` module where PyAV is not installed; any use raises one clear error."""

    def __init__(self, cause: ModuleNotFoundError) -> None:
        self._cause = cause

    def __getattr__(self, name: str) -> Any:
        raise ModuleNotFoundError(
            "reading or writing video files needs PyAV, which is not installed "
            f"(`pip install av`; the import failed with: {self._cause})",
            name="av",
        ) from self._cause


try:
    import av
except ModuleNotFoundError as e:  # pragma: no cover - exercised by tests/test_gpu_image.py
    av = _PyAVMissing(e)

__all__ = ["av"]
