"""The audio path's dilated conv1d, alone or after GroupNorm -> SiLU: public entry points and
their backend choice (as `windowed_attention`: each backend says why it cannot run given inputs,
`auto` takes the first that can)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mmfast.ops.capability import HAS_TRITON, interpreter_requested, triton_cuda_why_not
from mmfast.ops.dilated_conv_reference import (
    dilated_conv1d_reference,
    norm_silu_dilated_conv1d_reference,
)
from mmfast.ops.dilated_conv_triton import triton_norm_silu_dilated_conv1d

# (x, norm_weight, norm_bias, groups, weight, bias, dilation, eps) -> y; no norm when norm_weight
# is None.
ConvFn = Callable[
    [Tensor, Tensor | None, Tensor | None, int, Tensor, Tensor | None, int, float], Tensor
]


@dataclass(frozen=True)
class ConvBackend:
    """One implementation of the (normed) dilated conv.

    `why_not(x, explicit)` returns None when the backend can run on x, else the reason; `explicit`
    is False when `auto` asks.
    """

    name: str
    fn: ConvFn
    why_not: Callable[[Tensor, bool], str | None]


def _torch_fn(x, norm_weight, norm_bias, groups, weight, bias, dilation, eps):
    if norm_weight is None:
        return dilated_conv1d_reference(x, weight, bias, dilation)
    return norm_silu_dilated_conv1d_reference(
        x, norm_weight, norm_bias, groups, weight, bias, dilation, eps
    )


def _always(x: Tensor, explicit: bool) -> str | None:
    return None


_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _triton_why_not(x: Tensor, explicit: bool) -> str | None:
    if not HAS_TRITON:
        return "triton is not installed"
    if x.dtype not in _TRITON_DTYPES:
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


CONV_BACKENDS: dict[str, ConvBackend] = {
    "torch": ConvBackend("torch", _torch_fn, _always),
    "triton": ConvBackend("triton", triton_norm_silu_dilated_conv1d, _triton_why_not),
}
# `auto` takes the first backend of this list that can run the inputs.
CONV_AUTO_ORDER: list[str] = ["triton", "torch"]


def select_conv_backend(x: Tensor, backend: str) -> ConvBackend:
    """The backend that will run on x; raises with every backend's reason when none can."""
    if backend != "auto":
        if backend not in CONV_BACKENDS:
            raise ValueError(
                f"unknown backend {backend!r}; expected 'auto' or one of {sorted(CONV_BACKENDS)}"
            )
        reason = CONV_BACKENDS[backend].why_not(x, True)
        if reason is not None:
            raise ValueError(f"backend {backend!r} cannot run these inputs: {reason}")
        return CONV_BACKENDS[backend]
    reasons = []
    for name in CONV_AUTO_ORDER:
        reason = CONV_BACKENDS[name].why_not(x, False)
        if reason is None:
            return CONV_BACKENDS[name]
        reasons.append(f"{name}: {reason}")
    raise ValueError("no dilated-conv backend can run these inputs: " + "; ".join(reasons))


def _check_tensor(name: str, t, layout: str, rank: int) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {layout}, got {type(t).__name__}")
    if t.dim() != rank:
        raise ValueError(f"{name} must be {layout}, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


def check_inputs(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    dilation: int,
    norm: tuple[Tensor, Tensor, int, float] | None = None,
) -> None:
    """Raise TypeError / ValueError naming what was expected and what came.

    norm: (norm_weight, norm_bias, groups, eps) of the GroupNorm before the conv, or None.
    """
    _check_tensor("x", x, "[B, Cin, L]", 3)
    b, c_in, length = x.shape
    _check_tensor("weight", weight, f"[Cout, Cin={c_in}, K]", 3)
    c_out, c_in_w, k = weight.shape
    if c_in_w != c_in:
        raise ValueError(
            f"weight must be [Cout, Cin={c_in}, K] to match x {tuple(x.shape)}, "
            f"got {tuple(weight.shape)}"
        )
    if k % 2 == 0:
        raise ValueError(f"the kernel size must be odd for 'same' padding, got K={k}")
    if length == 0:
        raise ValueError(f"x must have a positive length, got shape {tuple(x.shape)}")
    if bias is not None:
        _check_tensor("bias", bias, f"[Cout={c_out}]", 1)
        if bias.shape[0] != c_out:
            raise ValueError(f"bias must be [Cout={c_out}], got {tuple(bias.shape)}")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be a positive int, got {dilation!r}")
    tensors = {"x": x, "weight": weight, "bias": bias}
    if norm is not None:
        norm_weight, norm_bias, groups, eps = norm
        for name, t in (("norm_weight", norm_weight), ("norm_bias", norm_bias)):
            _check_tensor(name, t, f"[Cin={c_in}]", 1)
            if t.shape[0] != c_in:
                raise ValueError(f"{name} must be [Cin={c_in}], got {tuple(t.shape)}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive int, got {groups!r}")
        if c_in % groups:
            raise ValueError(f"groups={groups} must divide the {c_in} input channels")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
            raise ValueError(f"eps must be a non-negative float, got {eps!r}")
        tensors.update(norm_weight=norm_weight, norm_bias=norm_bias)
    for name, t in tensors.items():
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} must be on x's device {x.device}, got {t.device}")
    if x.device.type == "meta" or not torch.is_autocast_enabled(x.device.type):
        for name in ("weight", "bias"):
            t = tensors[name]
            if t is not None and t.dtype != x.dtype:
                raise TypeError(f"{name} must have x's dtype {x.dtype}, got {t.dtype}")


def dilated_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    dilation: int = 1,
    *,
    backend: str = "auto",
) -> Tensor:
    """Dilated conv1d with "same" zero padding:
    `F.conv1d(x, weight, bias, padding=dilation * (K - 1) // 2, dilation=dilation)`.

    Args:
        x: [B, Cin, L].
        weight: [Cout, Cin, K], K odd, in x's dtype.
        bias: [Cout] in x's dtype, or None.
        dilation: d >= 1 (any d; taps that land in the padding read zeros).
        backend: "auto" (Triton on CUDA GPUs of compute capability >= 8.0, else PyTorch),
            "torch", "triton" (on CPU tensors only under TRITON_INTERPRET=1), or a registered one.

    Returns:
        [B, Cout, L] in x's dtype (fp32 accumulation).

    Example:
        >>> x, w = torch.randn(2, 64, 400), torch.randn(128, 64, 3)
        >>> dilated_conv1d(x, w, dilation=512).shape
        torch.Size([2, 128, 400])
    """
    check_inputs(x, weight, bias, dilation)
    chosen = select_conv_backend(x, backend)
    return chosen.fn(x, None, None, 1, weight, bias, dilation, 0.0)


def norm_silu_dilated_conv1d(
    x: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    groups: int,
    weight: Tensor,
    bias: Tensor | None,
    dilation: int,
    eps: float = 1e-5,
    *,
    backend: str = "auto",
) -> Tensor:
    """`dilated_conv1d(silu(group_norm(x)), weight, bias, dilation)`, the ResBlock's audio in-path.

    The GroupNorm (biased variance over each sample's C/groups channels x L) runs in fp32 and its
    output is cast to x's dtype, as the release's GroupNorm32; the Triton backend applies the norm
    and SiLU while it loads x, so the activation never exists in memory.

    Args:
        x: [B, Cin, L].
        norm_weight, norm_bias: [Cin], the GroupNorm's affine parameters (any float dtype).
        groups: GroupNorm groups, a divisor of Cin.
        weight: [Cout, Cin, K], K odd, in x's dtype; bias: [Cout] in x's dtype, or None.
        dilation: d >= 1.
        eps: added to the variance.
        backend: as for `dilated_conv1d`.

    Returns:
        [B, Cout, L] in x's dtype.

    Example:
        >>> x = torch.randn(2, 128, 1600)
        >>> gn = torch.nn.GroupNorm(32, 128); conv = torch.nn.Conv1d(128, 256, 3)
        >>> norm_silu_dilated_conv1d(x, gn.weight, gn.bias, 32, conv.weight, conv.bias, 64).shape
        torch.Size([2, 256, 1600])
    """
    check_inputs(x, weight, bias, dilation, (norm_weight, norm_bias, groups, eps))
    chosen = select_conv_backend(x, backend)
    return chosen.fn(x, norm_weight, norm_bias, groups, weight, bias, dilation, float(eps))
