"""I3D: the weight file's layout, strict loading, batch independence, TF "SAME" padding and the
input checks, on seeded random weights (the real file is not available here)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from helpers import extractor_layout, he_init_, layout_of

from mmfast.eval.i3d import (
    BN_EPS_MMDIFFUSION,
    BN_EPS_TF,
    InceptionI3d,
    MaxPool3dSame,
    Unit3D,
    load_i3d,
    same_padding,
)
from mmfast.eval.weights import WeightFileError

LAYOUT = extractor_layout("i3d_pretrained_400")


@pytest.fixture(scope="module")
def source() -> InceptionI3d:
    return he_init_(InceptionI3d(), seed=0)


@pytest.fixture(scope="module")
def weight_file(source, tmp_path_factory):
    """The source's weights as the converted file holds them: a plain dict, no BN counters."""
    state = {
        k: v.clone()
        for k, v in source.state_dict().items()
        if not k.endswith(".bn.num_batches_tracked")
    }
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def videos() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 16, 224, 224, generator=g) * 2 - 1


def test_layout_is_the_weight_files():
    model = InceptionI3d()
    want = {row["name"]: (row["shape"], row["dtype"]) for row in LAYOUT["state_dict"]}
    assert len(want) == LAYOUT["num_state_dict_entries"] == 344
    assert layout_of(model) == want
    assert sum(p.numel() for p in model.parameters()) == LAYOUT["num_params"] == 12_697_264
    assert sum(b.numel() for b in model.buffers()) == LAYOUT["num_buffer_elements"]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == len(LAYOUT["keys_probably_absent_from_file"]) == 57
    assert {m.eps for m in bns} == {BN_EPS_TF}
    mm = InceptionI3d(bn_eps=BN_EPS_MMDIFFUSION)
    assert {m.eps for m in mm.modules() if hasattr(m, "eps")} == {1e-5}


def test_file_without_bn_counters_loads_and_matches_the_source(source, weight_file, videos):
    loaded = load_i3d(weight_file)
    assert not loaded.training
    with torch.no_grad():
        want, got = source(videos), loaded(videos)
        singles = torch.cat([loaded(v[None]) for v in videos])
    assert got.shape == (2, 400) and got.dtype == torch.float32
    assert torch.isfinite(got).all() and got.std() > 0.1
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # One clip's logits do not depend on the rest of the batch.
    torch.testing.assert_close(singles, got, rtol=1e-4, atol=1e-4)


def _drop(state, key):
    del state[key]


def _add(state, key):
    state[key] = torch.ones(1024)


def _reshape(state, key):
    state[key] = state[key][:, :, :1]


def _retype(state, key):
    state[key] = state[key].double()


@pytest.mark.parametrize(
    "edit, key",
    [
        (_drop, "Mixed_4d.b2b.bn.running_var"),
        (_add, "logits.bn.weight"),
        (_reshape, "Conv3d_1a_7x7.conv3d.weight"),
        (_retype, "logits.conv3d.bias"),
    ],
    ids=["missing", "extra", "wrong_shape", "wrong_dtype"],
)
def test_a_file_that_does_not_fit_names_the_key(weight_file, tmp_path, edit, key):
    state = torch.load(weight_file, weights_only=True)
    edit(state, key)
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(state, path)
    with pytest.raises(WeightFileError, match=re.escape(key)):
        load_i3d(path)


def test_a_file_with_bn_counters_loads_too(source, tmp_path):
    path = tmp_path / "with_counters.pt"
    torch.save(source.state_dict(), path)
    loaded = load_i3d(path)
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


@pytest.mark.parametrize("where", ["none", "missing"])
def test_no_file_names_the_option(tmp_path, where):
    path = None if where == "none" else tmp_path / "i3d_pretrained_400.pt"
    with pytest.raises(WeightFileError, match="--i3d"):
        load_i3d(path)


# (kernel, stride) of Conv3d_1a_7x7, MaxPool3d_2a_3x3, MaxPool3d_4a_3x3, MaxPool3d_5a_2x2 and the
# blocks' 3x3x3 convs and pool.
WINDOWS = {
    "conv_7x7x7_s2": ((7, 7, 7), (2, 2, 2)),
    "pool_1x3x3_s122": ((1, 3, 3), (1, 2, 2)),
    "pool_3x3x3_s2": ((3, 3, 3), (2, 2, 2)),
    "pool_2x2x2_s2": ((2, 2, 2), (2, 2, 2)),
    "3x3x3_s1": ((3, 3, 3), (1, 1, 1)),
}


def test_same_padding_is_tensorflows_rule():
    for n in range(1, 40):
        for k in range(1, 8):
            for s in range(1, 4):
                w_front, w_back, *_ = same_padding((1, 1, n), (1, 1, k), (1, 1, s))
                out = math.ceil(n / s)
                assert w_front + w_back == max((out - 1) * s + k - n, 0), (n, k, s)
                assert w_front == (w_front + w_back) // 2
                assert (n + w_front + w_back - k) // s + 1 == out


@pytest.mark.parametrize("window", WINDOWS, ids=list(WINDOWS))
@pytest.mark.parametrize("size", [(9, 223, 224), (10, 224, 225), (11, 225, 223)], ids=str)
def test_units_and_pools_keep_ceil_of_size_over_stride(window, size):
    kernel, stride = WINDOWS[window]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 1, *size, generator=g)
    want = tuple(math.ceil(n / s) for n, s in zip(size, stride, strict=True))
    unit = Unit3D(1, 2, kernel, stride).eval()
    assert unit(x).shape[2:] == want
    assert MaxPool3dSame(kernel, stride)(x).shape[2:] == want


def test_pad_split_puts_the_odd_pixel_at_the_back():
    kernel, stride = (2, 4, 7), (1, 2, 3)
    size = (5, 7, 8)  # totals 1, 3, 5: all odd, so the split shows
    pad = (2, 3, 1, 2, 0, 1)
    assert same_padding(size, kernel, stride) == pad
    g = torch.Generator().manual_seed(3)
    unit = Unit3D(2, 3, kernel, stride, bn=False, relu=False, bias=True)
    x = torch.randn(2, 2, *size, generator=g)
    want = F.conv3d(F.pad(x, pad), unit.conv3d.weight, unit.conv3d.bias, stride)
    torch.testing.assert_close(unit(x), want, rtol=0, atol=0)
    negative = -1 - torch.rand(2, 2, *size, generator=g)
    pooled = MaxPool3dSame(kernel, stride)(negative)
    torch.testing.assert_close(pooled, F.max_pool3d(F.pad(negative, pad), kernel, stride))
    assert (pooled[..., 0] == 0).all()  # the padding is zeros, as the original's


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((3, 16, 224, 224), torch.float32),
        ((1, 1, 16, 224, 224), torch.float32),
        ((1, 3, 8, 224, 224), torch.float32),
        ((1, 3, 16, 112, 112), torch.float32),
        ((1, 3, 16, 224, 225), torch.float32),
        ((1, 3, 16, 224, 224), torch.float64),
        ((1, 3, 16, 224, 224), torch.uint8),
    ],
    ids=["4d", "1_channel", "8_frames", "112px", "225_wide", "float64", "uint8"],
)
def test_bad_input_names_the_expected_shape(source, shape, dtype):
    with pytest.raises(ValueError, match=re.escape("[B, 3, T, 224, 224] with T >= 9, float32")):
        source(torch.zeros(shape, dtype=dtype))
