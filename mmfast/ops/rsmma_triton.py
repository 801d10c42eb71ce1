"""The fused RS-MMA kernels as torch custom ops with autograd, and the "triton" backend's function
and `why_not` (listed in `mmfast.ops.rsmma.RSMMA_BACKENDS`).

`mmfast::rsmma_fwd(q, k, v, shift_t, shift, segments, window, scale) -> (out, lse)` and
`mmfast::rsmma_bwd(dout, q, k, v, out, lse, shift_t, shift, segments, window, scale) -> (dq, dk, dv)`
are opaque to torch.compile (fake implementations give the shapes), so a model that calls them
compiles with fullgraph=True. Autograd is registered on rsmma_fwd with `register_autograd`; its
backward calls rsmma_bwd. Implementations:
- CUDA tensors: the Triton kernels of `mmfast.kernels.rsmma_fwd` / `rsmma_bwd`.
- CPU tensors: the same kernels when Triton was imported with TRITON_INTERPRET=1 (tests), else the
  `gather` reference with explicit scores (`rsmma_reference.rsmma_gather_lse/_backward`).
Triton is imported on the first call, never at import time.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmfast.ops import rsmma_reference
from mmfast.ops.capability import HAS_TRITON, triton_cuda_why_not
from mmfast.ops.rsmma_reference import Shift

# mmfast.kernels.rsmma_fwd.DTYPES and HEAD_DIMS without importing triton
# (tests/ops/test_kernel_constants.py pins them equal).
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
KERNEL_HEAD_DIMS = (16, 32, 64, 128)


def uses_kernel(device: torch.device) -> bool:
    """Whether the custom ops run the Triton kernels (rather than the gather reference) on device."""
    if device.type == "cuda":
        return True
    if device.type == "cpu" and HAS_TRITON:
        from mmfast.kernels import rsmma_fwd

        return rsmma_fwd.interpreted()
    return False


def _kernels():
    if not HAS_TRITON:
        raise RuntimeError("the RS-MMA Triton kernels need triton, which is not installed")
    from mmfast.kernels import rsmma_bwd, rsmma_fwd

    return rsmma_fwd, rsmma_bwd


def _shift(shift_t: Tensor | None, shift: int) -> Shift:
    return shift if shift_t is None else shift_t


@torch.library.custom_op("mmfast::rsmma_fwd", mutates_args=())
def rsmma_fwd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    shift_t: Tensor | None,
    shift: int,
    segments: int,
    window: int,
    scale: float,
) -> tuple[Tensor, Tensor]:
    """RS-MMA forward. q: [B, H, Lq, D], k, v: [B, H, Lk, D]; shift_t: an integer tensor [B] of
    per-sample shifts (then `shift` is ignored) or None. Returns (out [B, H, Lq, D] in q's dtype,
    contiguous; lse [B, H, Lq] fp32)."""
    if uses_kernel(q.device):
        return _kernels()[0].rsmma_fwd(q, k, v, segments, window, _shift(shift_t, shift), scale)
    out, lse = rsmma_reference.rsmma_gather_lse(
        q, k, v, segments, window, _shift(shift_t, shift), scale
    )
    return out.contiguous(), lse.float()


@rsmma_fwd.register_fake
def _rsmma_fwd_fake(q, k, v, shift_t, shift, segments, window, scale):
    b, h, lq, d = q.shape
    return q.new_empty(b, h, lq, d), q.new_empty(b, h, lq, dtype=torch.float32)


@torch.library.custom_op("mmfast::rsmma_bwd", mutates_args=())
def rsmma_bwd(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    shift_t: Tensor | None,
    shift: int,
    segments: int,
    window: int,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """RS-MMA backward: (dq [B, H, Lq, D], dk [B, H, Lk, D], dv [B, H, Lk, D]), contiguous."""
    if uses_kernel(q.device):
        return _kernels()[1].rsmma_bwd(
            dout, q, k, v, out, lse, segments, window, _shift(shift_t, shift), scale
        )
    grads = rsmma_reference.rsmma_gather_backward(
        dout, q, k, v, out, lse, segments, window, _shift(shift_t, shift), scale
    )
    return tuple(g.contiguous() for g in grads)


@rsmma_bwd.register_fake
def _rsmma_bwd_fake(dout, q, k, v, out, lse, shift_t, shift, segments, window, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def rsmma_setup_context(ctx, inputs, output) -> None:
    q, k, v, shift_t, shift, segments, window, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, shift_t)
    ctx.shift, ctx.segments, ctx.window, ctx.scale = shift, segments, window, scale
    ctx.mark_non_differentiable(lse)


def rsmma_backward(ctx, dout: Tensor, dlse: Tensor | None):
    q, k, v, out, lse, shift_t = ctx.saved_tensors
    dq, dk, dv = rsmma_bwd(
        dout, q, k, v, out, lse, shift_t, ctx.shift, ctx.segments, ctx.window, ctx.scale
    )
    return dq, dk, dv, None, None, None, None, None


rsmma_fwd.register_autograd(rsmma_backward, setup_context=rsmma_setup_context)


def triton_rsmma_attention(
    q: Tensor, k: Tensor, v: Tensor, segments: int, window: int, shift: Shift, scale: float
) -> Tensor:
    """The "triton" backend: q: [B, H, Lq, D], k, v: [B, H, Lk, D] -> [B, H, Lq, D]."""
    if isinstance(shift, Tensor):
        return rsmma_fwd(q, k, v, shift, 0, segments, window, scale)[0]
    return rsmma_fwd(q, k, v, None, shift, segments, window, scale)[0]


def triton_why_not(q: Tensor, k: Tensor, v: Tensor, shift: Shift, *, explicit: bool) -> str | None:
    """Why the "triton" backend cannot run these inputs, or None. `auto` (explicit=False) takes the
    kernel on CUDA only: on the CPU it would be the interpreter or the gather implementation."""
    if not HAS_TRITON:
        return "triton is not installed"
    if q.dtype not in KERNEL_DTYPES:
        return f"the kernel takes {KERNEL_DTYPES}, got {q.dtype}"
    if q.shape[-1] not in KERNEL_HEAD_DIMS:
        return f"the kernel takes head dims {KERNEL_HEAD_DIMS}, got {q.shape[-1]}"
    if q.device.type == "cuda":
        return triton_cuda_why_not(q.device)
    if not explicit:
        return f"auto uses the Triton kernel on CUDA devices only, got {q.device.type}"
    if q.device.type == "cpu":
        return None  # the interpreted kernel, or the op's gather implementation
    return f"tensors on {q.device.type} (the kernel runs on CUDA)"
