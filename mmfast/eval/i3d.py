"""I3D (Inception-v1 inflated to 3D) trained on Kinetics-400: the video network of FVD and KVD.

video [B, 3, T, 224, 224] in [-1, 1] -> pre-softmax Kinetics-400 logits [B, 400], averaged over
time. The network of piergiaj/pytorch-i3d as vendored by MM-Diffusion
(evaluations/fvd/pytorch_i3d.py, `InceptionI3d(400, in_channels=3)`), with its state-dict names,
so that `i3d_pretrained_400.pt` (converted from TF-Hub's deepmind/i3d-kinetics-400/1) loads as it
is. Every conv and max pool pads as TensorFlow's "SAME" does, which depends on the input size, so
the padding is computed in forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfast.eval.weights import WeightFileError, load_strict, require_file
from mmfast.state_dict import read_state_dict

I3D_FILE = "i3d_pretrained_400.pt"
I3D_SOURCE = (
    "MM-Diffusion's evaluations/fvd/download.py, Google Drive id 1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT"
)

# MM-Diffusion's copy builds BatchNorm3d(eps=1e-5); piergiaj's original and the TF network the
# weights were converted from use 1e-3. The default is the network as trained; the release's
# protocol (mmfast.eval.protocol) passes MM-Diffusion's value.
BN_EPS_MMDIFFUSION = 1e-5
BN_EPS_TF = 1e-3

SIZE = 224
MIN_FRAMES = 9  # time shrinks 8x before AvgPool3d([2, 7, 7]), which needs 2 positions
NUM_CLASSES = 400

Triple = tuple[int, int, int]


def same_padding(size: Sequence[int], kernel: Triple, stride: Triple) -> tuple[int, ...]:
    """TF "SAME" padding of an input of `size` (T, H, W), in F.pad's order (w_front, w_back,
    h_front, h_back, t_front, t_back): the output is ceil(n / s) long on each axis and the odd
    pad goes to the back."""
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride), strict=True):
        total = max(k - (n % s or s), 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3D(nn.Module):
    """[B, C_in, T, H, W] -> [B, C_out, ceil(T/st), ceil(H/sh), ceil(W/sw)]: "SAME" conv+BN+ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        *,
        bn: bool = True,
        relu: bool = True,
        bias: bool = False,
        bn_eps: float = BN_EPS_TF,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=0.001) if bn else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """[B, C, T, H, W] -> [B, C, ceil(T/st), ceil(H/sh), ceil(W/sw)]: max pool, "SAME" padded."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        # Zeros, as the original pads; every pool here follows a ReLU, so they act as TF's -inf.
        x = F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """[B, C_in, T, H, W] -> [B, w0 + w1b + w2b + w3b, T, H, W]: a Mixed_* block's 4 branches."""

    def __init__(
        self,
        in_channels: int,
        widths: tuple[int, int, int, int, int, int],
        bn_eps: float = BN_EPS_TF,
    ) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.out_channels = w0 + w1b + w2b + w3b
        self.b0 = Unit3D(in_channels, w0, bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, w1a, bn_eps=bn_eps)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, w2a, bn_eps=bn_eps)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b, bn_eps=bn_eps)

    def forward(self, x: Tensor) -> Tensor:
        b0 = self.b0(x)
        b1 = self.b1b(self.b1a(x))
        b2 = self.b2b(self.b2a(x))
        b3 = self.b3b(self.b3a(x))
        return torch.cat([b0, b1, b2, b3], dim=1)


class InceptionI3d(nn.Module):
    """video [B, 3, T >= 9, 224, 224] in [-1, 1] -> pre-softmax logits [B, 400], mean over time."""

    ENDPOINTS = (
        "Conv3d_1a_7x7",
        "MaxPool3d_2a_3x3",
        "Conv3d_2b_1x1",
        "Conv3d_2c_3x3",
        "MaxPool3d_3a_3x3",
        "Mixed_3b",
        "Mixed_3c",
        "MaxPool3d_4a_3x3",
        "Mixed_4b",
        "Mixed_4c",
        "Mixed_4d",
        "Mixed_4e",
        "Mixed_4f",
        "MaxPool3d_5a_2x2",
        "Mixed_5b",
        "Mixed_5c",
    )

    def __init__(self, *, bn_eps: float = BN_EPS_TF) -> None:
        super().__init__()
        unit = partial(Unit3D, bn_eps=bn_eps)
        block = partial(InceptionBlock, bn_eps=bn_eps)
        self.Conv3d_1a_7x7 = unit(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = unit(64, 64)
        self.Conv3d_2c_3x3 = unit(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = block(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = block(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = block(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = block(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = block(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = block(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = block(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = block(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = block(832, (384, 192, 384, 48, 128, 128))
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        # The original passes dropout_keep_prob=0.5 as the drop probability; both are 0.5.
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(1024, NUM_CLASSES, bn=False, relu=False, bias=True)

    def forward(self, video: Tensor) -> Tensor:
        dtype = self.logits.conv3d.weight.dtype
        if (
            video.ndim != 5
            or video.shape[1] != 3
            or video.shape[2] < MIN_FRAMES
            or tuple(video.shape[3:]) != (SIZE, SIZE)
            or video.dtype != dtype
        ):
            raise ValueError(
                f"I3D expects video [B, 3, T, {SIZE}, {SIZE}] with T >= {MIN_FRAMES}, "
                f"{str(dtype).removeprefix('torch.')} in [-1, 1]; got {list(video.shape)} "
                f"{str(video.dtype).removeprefix('torch.')}"
            )
        x = video
        for name in self.ENDPOINTS:
            x = self.get_submodule(name)(x)
        x = self.logits(self.dropout(self.avg_pool(x)))  # [B, 400, ceil(T / 8) - 1, 1, 1]
        return x.flatten(2).mean(dim=2)


def load_i3d(path: str | Path | None, *, bn_eps: float = BN_EPS_TF) -> InceptionI3d:
    """The I3D in `path` (i3d_pretrained_400.pt), in eval mode, on the CPU.

    Every key must be there with its shape and dtype, except the BatchNorm counters
    `*.bn.num_batches_tracked`, which the converted file lacks and which forward never reads.
    A missing file or one that does not fit is a WeightFileError naming `--i3d` or the key.

        i3d = load_i3d("i3d_pretrained_400.pt")
        logits = i3d(video)  # video [B, 3, 16, 224, 224] -> [B, 400]
    """
    what = f"I3D ({I3D_FILE})"
    path = require_file(path, what=what, option="--i3d", source=I3D_SOURCE)
    state = read_state_dict(path, what=what, error=WeightFileError)
    model = InceptionI3d(bn_eps=bn_eps)
    counters = [k for k in model.state_dict() if k.endswith(".bn.num_batches_tracked")]
    load_strict(model, state, path=path, what=what, optional=counters)
    return model.eval()
