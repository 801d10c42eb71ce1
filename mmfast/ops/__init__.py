"""Operators of mmfast: public functions, backend choice, references.

`kernels/` (installed as `mmfast.kernels`) holds the Triton code; this package wraps it.
Importing it registers the torch custom ops `mmfast::rsmma_fwd` / `mmfast::rsmma_bwd` and the
"triton" backend; triton itself is imported on the first call that needs it.
"""

from mmfast.ops import rsmma_triton  # noqa: F401  (registration)
from mmfast.ops.dilated_conv import (
    CONV_BACKENDS,
    ConvBackend,
    dilated_conv1d,
    norm_silu_dilated_conv1d,
)
from mmfast.ops.windowed_attention import (
    BACKENDS,
    AttentionBackend,
    register_backend,
    windowed_cross_attention,
)

__all__ = [
    "BACKENDS",
    "CONV_BACKENDS",
    "AttentionBackend",
    "ConvBackend",
    "dilated_conv1d",
    "norm_silu_dilated_conv1d",
    "register_backend",
    "windowed_cross_attention",
]
