"""Operators of mmfast: public functions, backend choice, references.

`kernels/` (installed as `mmfast.kernels`) holds the Triton code; this package wraps it.
"""

from mmfast.ops.windowed_attention import (
    BACKENDS,
    AttentionBackend,
    register_backend,
    windowed_cross_attention,
)

__all__ = ["BACKENDS", "AttentionBackend", "register_backend", "windowed_cross_attention"]
