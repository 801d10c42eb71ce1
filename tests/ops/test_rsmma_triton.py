"""The fused RS-MMA kernels (forward, dQ, dK, dV, LSE) against the float64 naive reference.

Runs on the CPU under the Triton interpreter (tests/ops/conftest.py sets TRITON_INTERPRET=1 when
there is no GPU): fp32 and fp16 only, since the interpreter's tl.dot on bf16 is not meaningful;
bf16 and the model's real shapes are in test_rsmma_triton_gpu.py.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rsmma_cases import DEVICE, MODEL_SHAPES, SMALL_TILES, check_case, make_inputs, run_kernels

from mmfast.kernels.rsmma_bwd import dkdv_config, dq_config
from mmfast.kernels.rsmma_fwd import TileConfig, fwd_config, own_tiling, rsmma_fwd

# (B, H, F, SQ, SK, D, window, shift): segment lengths 1, 3, 5, 25, 33, 100 (not block multiples),
# windows 1, F/2 and F, shifts that wrap, per-sample shift tensors (lists), B*H > 1.
CASES = [
    (2, 2, 4, 25, 33, 32, 2, 3),
    (1, 2, 4, 33, 25, 32, 4, 1),
    (2, 1, 16, 1, 25, 32, 8, 13),
    (1, 2, 8, 100, 1, 32, 1, 7),
    (2, 1, 4, 1, 100, 64, 1, [0, 3]),
    (1, 1, 2, 33, 33, 128, 1, 1),
    (2, 2, 16, 3, 5, 16, 16, [5, -2]),
    (3, 1, 4, 25, 25, 64, 2, [1, 2, 7]),
]


def _id(case) -> str:
    b, h, f, sq, sk, d, w, r = case
    return f"B{b}H{h}-F{f}-SQ{sq}-SK{sk}-D{d}-W{w}-R{r}".replace(" ", "")


@pytest.mark.parametrize("tiles", [None, SMALL_TILES], ids=["tuned", "tiles16"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_fp32_matches_float64_reference(case, tiles):
    b, h, f, sq, sk, d, w, r = case
    check_case(
        b, h, f, sq, sk, d, w, r, torch.float32, seed=zlib.crc32(_id(case).encode()), config=tiles
    )


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[4], CASES[6]], ids=_id)
def test_fp16_matches_float64_reference(case):
    b, h, f, sq, sk, d, w, r = case
    check_case(b, h, f, sq, sk, d, w, r, torch.float16, seed=zlib.crc32(_id(case).encode()) + 1)


@pytest.mark.parametrize("window", [1, 4, 8])
def test_every_shift_in_one_launch(window):
    """Sample b of a batch of F gets shift b - F (negative), b, or b + F: all F shifts, with wrap."""
    f = 8
    for offset, tiles in ((0, SMALL_TILES), (-f, None), (f, None)):
        shifts = [r + offset for r in range(f)]
        check_case(
            f, 1, f, 3, 5, 16, window, shifts, torch.float32, seed=window + offset, config=tiles
        )


@pytest.mark.parametrize("shift", range(8))
def test_every_int_shift(shift):
    check_case(1, 2, 8, 5, 3, 16, 4, shift, torch.float32, seed=100 + shift, config=SMALL_TILES)


@pytest.mark.parametrize(
    "tiles",
    [TileConfig(o, lp, 4, 2) for o, lp in [(16, 64), (32, 32), (64, 16), (128, 16), (128, 64)]],
    ids=lambda c: f"own{c.block_own}-loop{c.block_loop}",
)
def test_every_tiling_is_correct(tiles):
    """Whatever the picker chooses: packed (G > 1) and split (T > 1) segments, long and short runs."""
    check_case(2, 1, 8, 20, 9, 16, 3, [2, 6], torch.float32, seed=tiles.block_own, config=tiles)
    check_case(1, 1, 4, 70, 40, 16, 2, 3, torch.float32, seed=tiles.block_loop, config=tiles)


@settings(max_examples=25, deadline=None)
@given(
    f=st.integers(1, 8),
    sq=st.sampled_from([1, 2, 7, 16, 25, 33]),
    sk=st.sampled_from([1, 3, 9, 25, 33]),
    window_frac=st.floats(0, 1),
    shift=st.integers(-20, 20),
    per_sample=st.booleans(),
    bh=st.sampled_from([(1, 1), (2, 1), (1, 2)]),
    small_tiles=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_kernels_match_reference(
    f, sq, sk, window_frac, shift, per_sample, bh, small_tiles, seed
):
    b, h = bh
    window = 1 + int(window_frac * (f - 1))
    r = [shift + 5 * i for i in range(b)] if per_sample else shift
    config = SMALL_TILES if small_tiles else None
    check_case(b, h, f, sq, sk, 16, window, r, torch.float32, seed=seed, config=config)


def test_strided_inputs_match_contiguous():
    """q, k, v as the model passes them: head views of one [B, L, 3, H, D] projection."""
    q, k, v, _ = make_inputs(2, 2, 4, 5, 6, 16, torch.float32, seed=3)
    qkv_q = torch.stack([q, q, q], 2).permute(0, 3, 2, 1, 4).contiguous()  # [B, Lq, 3, H, D]
    kv = torch.stack([k, k, v], 2).permute(0, 3, 2, 1, 4).contiguous()
    strided = (
        qkv_q[:, :, 0].transpose(1, 2),
        kv[:, :, 1].transpose(1, 2),
        kv[:, :, 2].transpose(1, 2),
    )
    assert not strided[0].is_contiguous()
    a = rsmma_fwd(*strided, 4, 2, 3)
    b = rsmma_fwd(q, k, v, 4, 2, 3)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)


def test_default_scale_is_inverse_sqrt_head_dim():
    q, k, v, dout = make_inputs(1, 1, 4, 3, 3, 32, torch.float32, seed=5)
    a = rsmma_fwd(q, k, v, 4, 2, 1)[0]
    b = run_kernels(q, k, v, dout, 4, 2, 1, 1 / math.sqrt(32))[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_configs_follow_the_segment_lengths():
    """The picker's choices on the model's shapes (D = 64, F = 16): packed short segments, no
    more rows than a register tile allows, tiles that cover every row."""
    for sq, sk, w in MODEL_SHAPES:
        for cfg, own in (
            (fwd_config(sq, sk, 16, w, 64), sq),
            (dq_config(sq, sk, 16, w, 64), sq),
            (dkdv_config(sq, sk, 16, w, 64), sk),
        ):
            g, t = own_tiling(own, 16, cfg.block_own)
            assert g * t >= 1 and (g == 1 or t == 1)
            assert g * own <= cfg.block_own or t * cfg.block_own >= own
            assert cfg.block_own <= 128 and cfg.block_loop <= 64
    assert own_tiling(25, 16, fwd_config(25, 64, 16, 8, 64).block_own)[0] >= 2  # packed
    assert own_tiling(1024, 16, fwd_config(1024, 400, 16, 1, 64).block_own) == (1, 8)
    assert dkdv_config(64, 64, 16, 4, 128).block_own <= 64  # D = 128: two fp32 accumulators


@pytest.mark.parametrize("arch", [80, 86, 89])
def test_configs_before_hopper_keep_register_tiles_small(arch):
    """mma.sync (sm_80-sm_89) holds operand fragments in registers beside the accumulators: the
    tiles that spilled there under ptxas (tests/ops/check_compile.py --arch 80) are not picked,
    and sm_90 keeps its larger ones."""
    for sq, sk, w in MODEL_SHAPES:
        assert dkdv_config(sq, sk, 16, w, 64, arch=arch).block_own <= 64
        for config in (fwd_config, dq_config, dkdv_config):
            cfg = config(sq, sk, 16, w, 128, arch=arch)
            assert cfg.block_own <= 64 and cfg.block_loop <= 32
        # The forward at D = 128: 64 x 32 on 8 warps spilled under Triton 3.6.
        assert fwd_config(sq, sk, 16, w, 128, arch=arch).block_loop <= 16
        assert fwd_config(sq, sk, 16, w, 32, arch=arch).block_loop <= 32
        for config in (fwd_config, dq_config, dkdv_config):
            cfg = config(sq, sk, 16, w, 64, fp32=True, arch=arch)
            assert cfg.num_warps == 8 and cfg.block_own <= 32  # 4 warps spilled 8-24 bytes
    assert fwd_config(256, 100, 16, 4, 128, arch=90).block_own == 128
    assert dkdv_config(100, 256, 16, 4, 64, arch=90).block_own == 128


@pytest.mark.parametrize(
    "change,err,match",
    [
        (dict(q=torch.zeros(1, 2, 8, 16, dtype=torch.float64)), TypeError, "must be one of"),
        (
            dict(
                q=torch.zeros(1, 2, 8, 48), k=torch.zeros(1, 2, 12, 48), v=torch.zeros(1, 2, 12, 48)
            ),
            ValueError,
            "head dim must be one of .* got 48",
        ),
        (
            dict(k=torch.zeros(1, 2, 12, 32)),
            ValueError,
            r"k and v must both be \[B=1, H=2, Lk, D=16\]",
        ),
        (dict(segments=3), ValueError, "multiples of segments=3"),
        (dict(window=5), ValueError, r"window must be in \[1, segments=4\], got 5"),
        (dict(shift=torch.tensor([1, 2])), ValueError, r"integer tensor \[B=1\]"),
        (dict(shift=torch.tensor([1.0])), ValueError, "integer tensor"),
        (
            dict(out=torch.zeros(1, 2, 8, 8)),
            ValueError,
            r"out must be torch.float32 \(1, 2, 8, 16\)",
        ),
        (
            dict(lse=torch.zeros(1, 2, 8, dtype=torch.float16)),
            ValueError,
            "lse must be torch.float32",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_launcher_names_bad_inputs(change, err, match):
    args = dict(
        q=torch.zeros(1, 2, 8, 16),
        k=torch.zeros(1, 2, 12, 16),
        v=torch.zeros(1, 2, 12, 16),
        segments=4,
        window=2,
        shift=1,
    )
    args.update(change)
    args = {n: t.to(DEVICE) if isinstance(t, torch.Tensor) else t for n, t in args.items()}
    with pytest.raises(err, match=match):
        rsmma_fwd(**args)
