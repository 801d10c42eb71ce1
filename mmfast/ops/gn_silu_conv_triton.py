"""The Triton backend of the fused GroupNorm -> SiLU -> dilated conv1d as torch.library custom ops.

`mmfast::gn_silu_conv_fwd` (forward, also returns the GroupNorm statistics for the backward)
and `mmfast::gn_silu_conv_bwd`, with fake implementations (torch.compile traces
them without graph breaks) and autograd through `register_autograd`. Without norm tensors the ops
are the plain dilated conv. The kernels (`mmfast.kernels`) are imported when an op first runs, so
importing this module needs neither triton nor a GPU. Double backward is not supported.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmfast.ops.capability import HAS_TRITON, interpreter_requested, triton_cuda_why_not

# The dtypes the kernels take (mmfast.kernels.gn_silu_conv_fwd.DTYPES; pinned equal by
# tests/ops/test_kernel_constants.py).
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@torch.library.custom_op("mmfast::gn_silu_conv_fwd", mutates_args=())
def gn_silu_conv_fwd_op(
    x: Tensor,
    norm_weight: Tensor | None,
    norm_bias: Tensor | None,
    weight: Tensor,
    bias: Tensor | None,
    groups: int,
    dilation: int,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """x: [B, Cin, L], weight: [Cout, Cin, K] -> (y [B, Cout, L], mean [B, G], rstd [B, G]) with
    G = groups, or G = 0 without the norm."""
    from mmfast.kernels.gn_silu_conv_fwd import gn_silu_conv_fwd

    return gn_silu_conv_fwd(x, weight, bias, dilation, norm_weight, norm_bias, groups, eps)


@gn_silu_conv_fwd_op.register_fake
def _(x, norm_weight, norm_bias, weight, bias, groups, dilation, eps):
    g = groups if norm_weight is not None else 0
    stats = dict(device=x.device, dtype=torch.float32)
    y = x.new_empty(x.shape[0], weight.shape[0], x.shape[2])
    return y, torch.empty(x.shape[0], g, **stats), torch.empty(x.shape[0], g, **stats)


@torch.library.custom_op("mmfast::gn_silu_conv_bwd", mutates_args=())
def gn_silu_conv_bwd_op(
    dy: Tensor,
    x: Tensor,
    norm_weight: Tensor | None,
    norm_bias: Tensor | None,
    weight: Tensor,
    mean: Tensor,
    rstd: Tensor,
    groups: int,
    dilation: int,
    has_bias: bool,
    need_input_grads: bool,
    need_weight_grads: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(dx, dnorm_weight, dnorm_bias, dweight, dbias); see `gn_silu_conv_bwd`."""
    from mmfast.kernels.gn_silu_conv_bwd import gn_silu_conv_bwd

    return gn_silu_conv_bwd(
        dy,
        x,
        weight,
        dilation,
        mean,
        rstd,
        norm_weight,
        norm_bias,
        groups,
        has_bias,
        need_input_grads,
        need_weight_grads,
    )


@gn_silu_conv_bwd_op.register_fake
def _(
    dy,
    x,
    norm_weight,
    norm_bias,
    weight,
    mean,
    rstd,
    groups,
    dilation,
    has_bias,
    need_input_grads,
    need_weight_grads,
):
    norm_like = norm_weight if norm_weight is not None else x.new_empty(0, dtype=torch.float32)
    norm_grads = need_input_grads and norm_weight is not None
    return (
        x.new_empty(x.shape if need_input_grads else (0,)),
        norm_like.new_empty(norm_like.shape if norm_grads else (0,)),
        norm_like.new_empty(norm_like.shape if norm_grads else (0,)),
        weight.new_empty(weight.shape if need_weight_grads else (0,)),
        weight.new_empty((weight.shape[0],) if need_weight_grads and has_bias else (0,)),
    )


def _setup_context(ctx, inputs, output) -> None:
    x, norm_weight, norm_bias, weight, bias, groups, dilation, _eps = inputs
    _y, mean, rstd = output
    ctx.save_for_backward(x, norm_weight, norm_bias, weight, mean, rstd)
    ctx.groups, ctx.dilation, ctx.has_bias = groups, dilation, bias is not None
    ctx.mark_non_differentiable(mean, rstd)


def _backward(ctx, dy: Tensor, _dmean: Tensor, _drstd: Tensor):
    x, norm_weight, norm_bias, weight, mean, rstd = ctx.saved_tensors
    need = ctx.needs_input_grad
    dx, dnw, dnb, dw, db = gn_silu_conv_bwd_op(
        dy,
        x,
        norm_weight,
        norm_bias,
        weight,
        mean,
        rstd,
        ctx.groups,
        ctx.dilation,
        ctx.has_bias,
        need[0] or need[1] or need[2],
        need[3] or need[4],
    )
    grads = (dx, dnw, dnb, dw, db)
    return (*(g if n else None for g, n in zip(grads, need[:5])), None, None, None)


gn_silu_conv_fwd_op.register_autograd(_backward, setup_context=_setup_context)


def triton_gn_silu_conv1d(
    x: Tensor,
    norm_weight: Tensor | None,
    norm_bias: Tensor | None,
    groups: int,
    weight: Tensor,
    bias: Tensor | None,
    dilation: int,
    eps: float,
) -> Tensor:
    """The fused op on validated inputs: x: [B, Cin, L] -> [B, Cout, L]; no norm when norm_weight
    is None. Under autocast the conv's operands are cast to the autocast dtype (the kernel wants
    one dtype for x and weight); the norm's statistics then come from the cast x."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    y, _mean, _rstd = gn_silu_conv_fwd_op(
        x, norm_weight, norm_bias, weight, bias, groups, dilation, eps
    )
    return y


def triton_why_not(x: Tensor, *, explicit: bool) -> str | None:
    """Why the "triton" backend cannot run on x, or None; `auto` (explicit=False) never takes the
    interpreter."""
    if not HAS_TRITON:
        return "triton is not installed"
    if x.dtype not in KERNEL_DTYPES:
        return f"dtype {x.dtype} is not one of float16, bfloat16, float32"
    interpreter = interpreter_requested()
    if not explicit and (interpreter or x.device.type != "cuda"):
        return "auto never runs the Triton interpreter; it takes Triton on CUDA GPUs only"
    if x.device.type == "cuda":
        return triton_cuda_why_not(x.device)
    if x.device.type == "cpu":
        if not interpreter:
            return "CPU tensors run only in the Triton interpreter (set TRITON_INTERPRET=1)"
        return None
    return f"device type {x.device.type!r} is not supported"
