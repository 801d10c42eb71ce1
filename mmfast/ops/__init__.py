"""Operators of mmfast: public functions, backend choice, references.

`kernels/` (installed as `mmfast.kernels`) holds the Triton code; this package wraps it.
Importing it registers the torch custom ops `mmfast::rsmma_fwd` / `mmfast::rsmma_bwd` and
`mmfast::gn_silu_conv_fwd` / `mmfast::gn_silu_conv_bwd`; triton itself is imported on the first
call that needs it. Each op's files share its name: `rsmma*.py`, `gn_silu_conv*.py`.
"""

from mmfast.ops.backends import Backend, select_backend
from mmfast.ops.gn_silu_conv import (
    GN_SILU_CONV_BACKENDS,
    gn_silu_conv1d,
    gn_silu_conv1d_plain,
    gn_silu_conv_backend,
)
from mmfast.ops.rsmma import RSMMA_BACKENDS, rsmma_attention, rsmma_backend
from mmfast.ops.rsmma_reference import Shift

__all__ = [
    "GN_SILU_CONV_BACKENDS",
    "RSMMA_BACKENDS",
    "Backend",
    "Shift",
    "gn_silu_conv1d",
    "gn_silu_conv1d_plain",
    "gn_silu_conv_backend",
    "rsmma_attention",
    "rsmma_backend",
    "select_backend",
]
