"""The tiny coupled U-Net with the Triton audio path (GN -> SiLU -> dilated conv, fused) against the
PyTorch path. The model itself runs only in fp32 (its norms and time embedding cast to fp32), so
both are measured against the same fp32 model whose audio in-paths alone run in float64. Without
CUDA the kernels run in the Triton interpreter."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from helpers import randomize_, rel_err

from mmfast.models import CoupledUNet
from mmfast.models.resblock import ResBlock
from mmfast.ops import GN_SILU_CONV_BACKENDS, Backend
from mmfast.ops.gn_silu_conv_reference import gn_silu_conv1d_reference

CUDA = torch.cuda.is_available()
if not CUDA:
    # Read when the kernels are first imported, which the ops do on their first call.
    os.environ.setdefault("TRITON_INTERPRET", "1")
DEVICE = "cuda" if CUDA else "cpu"
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None
    or not (CUDA or os.environ.get("TRITON_INTERPRET") == "1"),
    reason="needs triton and a GPU or the Triton interpreter",
)


def _anywhere(x, explicit):
    return None


def _forward_backward(model: CoupledUNet, video, audio) -> dict[str, torch.Tensor]:
    """Outputs, the audio input's gradient and the audio in-path's parameter gradients."""
    model.zero_grad()
    audio = audio.detach().clone().requires_grad_()
    v, a = model(video, audio, 10.0, shift=1)
    (v.square().mean() + a.square().mean()).backward()
    out = {"video": v.detach(), "audio": a.detach(), "d_audio": audio.grad}
    for name, p in model.named_parameters():
        if ".audio_in_" in name:
            out[name] = p.grad
    return out


def _float64_path(x, norm_weight, norm_bias, groups, weight, bias, dilation, eps):
    """The audio in-path in float64, cast back: differentiable, exact up to the final rounding."""
    args = (x, norm_weight, norm_bias)
    y = gn_silu_conv1d_reference(
        *(t.double() for t in args), groups, weight.double(), bias.double(), dilation, eps
    )
    return y.to(x.dtype)


def test_tiny_unet_triton_audio_path_matches_pytorch(monkeypatch):
    float64 = Backend("float64", _float64_path, _anywhere)  # no priority: runs only when named
    monkeypatch.setitem(GN_SILU_CONV_BACKENDS, "float64", float64)
    model = randomize_(CoupledUNet("tiny"), seed=3).to(DEVICE)
    g = torch.Generator().manual_seed(0)
    # 8 frames of 16x16 and 512 samples: the smallest inputs every level of the U-Net accepts.
    video = torch.randn(1, 8, 3, 16, 16, generator=g).to(DEVICE)
    audio = torch.randn(1, 1, 512, generator=g).to(DEVICE)

    model.set_conv_backend("float64")
    ref64 = _forward_backward(model, video, audio)
    model.set_conv_backend("torch")
    ref = _forward_backward(model, video, audio)
    model.set_conv_backend("triton")
    assert {b.conv_backend for b in model.modules() if isinstance(b, ResBlock)} == {"triton"}
    got = _forward_backward(model, video, audio)

    assert len(got) == 3 + 4 * 28  # every ResBlock's audio norm and conv took part
    for name, f64 in ref64.items():
        err, ref_err = rel_err(got[name], f64), rel_err(ref[name], f64)
        # The floor is float32 accumulation over a gradient's thousands of terms: PyTorch's own
        # path is up to 1.2e-5 from float64 here, and the sum order differs by CPU (the Triton
        # interpreter's error was 5.5x PyTorch's on one bias on an AVX-512 Xeon, 5.6e-6). A wrong
        # index or missing term is off by 1e-3 or more.
        assert err <= 4 * ref_err + 1e-5, f"{name}: {err:.2e} vs PyTorch's {ref_err:.2e}"
