"""Without a GPU, the Triton kernels run in the interpreter. TRITON_INTERPRET must be set before
triton is imported (triton.jit reads it when decorating, triton's own library included), which this
conftest does at collection, before any test here imports `mmfast.kernels.*`; mmfast itself
imports triton lazily. If something imported triton earlier, set TRITON_INTERPRET=1 in the
environment instead: the check below says so rather than letting every kernel test fail obscurely.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    if "triton" in sys.modules:
        import triton

        if isinstance(triton.language.standard.sum, triton.runtime.JITFunction):
            raise pytest.UsageError(
                "triton was imported without TRITON_INTERPRET=1 before tests/ops/conftest.py could "
                "set it; run the tests with TRITON_INTERPRET=1 in the environment on a CPU machine"
            )
    os.environ["TRITON_INTERPRET"] = "1"


# The test modules that launch the Triton kernels on a GPU. Below compute capability 8.0 the ops
# refuse the kernels (mmfast.ops.capability.triton_cuda_why_not), so there these modules skip,
# with that reason.
KERNEL_MODULES = {
    "test_gn_silu_conv_triton.py",
    "test_kernel_launch_guards.py",
    "test_rsmma_op.py",
    "test_rsmma_triton.py",
    "test_rsmma_triton_gpu.py",
}


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        return
    from mmfast.ops.capability import triton_cuda_why_not

    reason = triton_cuda_why_not(torch.device("cuda", torch.cuda.current_device()))
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"the Triton kernels do not run here: {reason}")
    for item in items:
        if item.path.name in KERNEL_MODULES:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_tf32(monkeypatch):
    """fp32 means fp32 on a GPU too: TF32 convolutions (cuDNN's default) would make the models'
    reference runs differ from the kernels' by ~1e-3 for reasons that are not ours."""
    if torch.cuda.is_available():
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
