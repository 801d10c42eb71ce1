"""The ops decide which inputs the Triton kernels take without importing triton (that import costs
seconds and must not happen on a CPU-only `auto` call), so they hold copies of the kernels'
constants: pinned equal here."""

from __future__ import annotations

import pytest

from mmfast.ops import gn_silu_conv_triton, rsmma_triton

pytest.importorskip("triton")


def test_rsmma_dtypes_and_head_dims_are_the_kernels():
    from mmfast.kernels import rsmma_fwd

    assert rsmma_triton.KERNEL_DTYPES == rsmma_fwd.DTYPES
    assert rsmma_triton.KERNEL_HEAD_DIMS == rsmma_fwd.HEAD_DIMS


def test_gn_silu_conv_dtypes_are_the_kernels():
    from mmfast.kernels import gn_silu_conv_fwd

    assert gn_silu_conv_triton.KERNEL_DTYPES == gn_silu_conv_fwd.DTYPES
