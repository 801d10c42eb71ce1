"""The audio path's fused GroupNorm -> SiLU -> dilated conv1d (and the conv alone): public entry
points and their backends (`mmfast.ops.backends`)."""

from __future__ import annotations

import torch
from torch import Tensor

from mmfast.ops import backends, gn_silu_conv_triton
from mmfast.ops.backends import Backend
from mmfast.ops.gn_silu_conv_reference import (
    gn_silu_conv1d_plain_reference,
    gn_silu_conv1d_reference,
)


def _torch_fn(x, norm_weight, norm_bias, groups, weight, bias, dilation, eps):
    if norm_weight is None:
        return gn_silu_conv1d_plain_reference(x, weight, bias, dilation)
    return gn_silu_conv1d_reference(x, norm_weight, norm_bias, groups, weight, bias, dilation, eps)


def _always(x: Tensor, *, explicit: bool) -> str | None:
    return None


# fn(x, norm_weight, norm_bias, groups, weight, bias, dilation, eps) -> y (no norm when
# norm_weight is None); why_not(x, explicit=...).
GN_SILU_CONV_BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "triton",
            gn_silu_conv_triton.triton_gn_silu_conv1d,
            gn_silu_conv_triton.triton_why_not,
            2,
        ),
        Backend("torch", _torch_fn, _always, 1),  # cuDNN on a GPU
    )
}


def gn_silu_conv_backend(x: Tensor, backend: str = "auto") -> Backend:
    """The backend of `GN_SILU_CONV_BACKENDS` that runs x ([B, C, L]): the one named, or for "auto"
    the runnable one of highest priority. ValueError with the reasons when none can."""
    return backends.select_backend("gn_silu_conv", GN_SILU_CONV_BACKENDS, backend, x)


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


def gn_silu_conv1d_plain(
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
            "torch", "triton" (on CPU tensors only under TRITON_INTERPRET=1).

    Returns:
        [B, Cout, L] in x's dtype (fp32 accumulation).

    Example:
        >>> x, w = torch.randn(2, 64, 400), torch.randn(128, 64, 3)
        >>> gn_silu_conv1d_plain(x, w, dilation=512).shape
        torch.Size([2, 128, 400])
    """
    check_inputs(x, weight, bias, dilation)
    chosen = gn_silu_conv_backend(x, backend)
    return chosen.fn(x, None, None, 1, weight, bias, dilation, 0.0)


def gn_silu_conv1d(
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
    """`gn_silu_conv1d_plain(silu(group_norm(x)), weight, bias, dilation)`, the ResBlock's audio in-path.

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
        backend: as for `gn_silu_conv1d_plain`.

    Returns:
        [B, Cout, L] in x's dtype.

    Example:
        >>> x = torch.randn(2, 128, 1600)
        >>> gn = torch.nn.GroupNorm(32, 128); conv = torch.nn.Conv1d(128, 256, 3)
        >>> gn_silu_conv1d(x, gn.weight, gn.bias, 32, conv.weight, conv.bias, 64).shape
        torch.Size([2, 256, 1600])
    """
    check_inputs(x, weight, bias, dilation, (norm_weight, norm_bias, groups, eps))
    chosen = gn_silu_conv_backend(x, backend)
    return chosen.fn(x, norm_weight, norm_bias, groups, weight, bias, dilation, float(eps))
