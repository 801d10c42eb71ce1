"""The coupled U-Net on the `tiny` preset: shapes, window shifts, checkpointing, precision, files, errors."""

from __future__ import annotations

import pytest
import torch
from helpers import randomize_, rel_err

from mmfast.models import CoupledUNet, CoupledUNetConfig, get_config, load_model
from mmfast.models.rsmma import CrossModalAttention


def _inputs(b=2, seed=0, cfg=None):
    cfg = cfg or get_config("tiny")
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(
        b, cfg.video_frames, cfg.video_channels, cfg.video_size, cfg.video_size, generator=g
    )
    audio = torch.randn(b, cfg.audio_channels, cfg.audio_length, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g).float()
    return video, audio, t


@pytest.fixture(scope="module")
def tiny():
    return randomize_(CoupledUNet("tiny"), seed=3).eval()


def test_tiny_preset_is_small_and_same_structure():
    tiny, full = CoupledUNet("tiny"), CoupledUNet("mmdiffusion-64")
    n = sum(p.numel() for p in tiny.parameters())
    assert 200_000 <= n <= 5_000_000
    assert len(tiny.state_dict()) == len(full.state_dict())
    assert [b.window for b in tiny.cross_blocks] == [b.window for b in full.cross_blocks]
    assert [b.window for b in full.cross_blocks] == [1, 1, 4, 4, 8, 8, None] + [8] * 3 + [4] * 3 + [
        1
    ] * 3


def test_release_dilations():
    model = CoupledUNet("mmdiffusion-64")
    dil = [m.dilation for m in model.modules() if hasattr(m, "dilation") and hasattr(m, "resample")]
    encoder = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1, 2]
    middle = [4, 4]
    decoder = [2, 1, 512, 256, 256, 128, 64, 32, 32, 16, 8, 4, 4, 2, 1]
    assert dil == encoder + middle + decoder


def test_initial_model_predicts_zero():
    model = CoupledUNet("tiny")
    video, audio, t = _inputs()
    with torch.no_grad():
        v, a = model(video, audio, t)
    assert v.shape == video.shape and a.shape == audio.shape
    assert v.abs().max() == 0 and a.abs().max() == 0  # zero-initialised heads, as in the release


def test_shapes_and_determinism(tiny):
    video, audio, t = _inputs()
    with torch.no_grad():
        v1, a1 = tiny(video, audio, t, shift=3)
        v2, a2 = tiny(video, audio, t, shift=3)
    assert v1.shape == video.shape and a1.shape == audio.shape
    assert v1.is_contiguous() and torch.isfinite(v1).all() and torch.isfinite(a1).all()
    assert torch.equal(v1, v2) and torch.equal(a1, a2)


def test_shift_changes_outputs_and_wraps(tiny):
    video, audio, t = _inputs()
    with torch.no_grad():
        outs = {r: tiny(video, audio, t, shift=r) for r in (0, 5, 16 + 5)}
    assert rel_err(outs[0][0], outs[5][0]) > 1e-4 and rel_err(outs[0][1], outs[5][1]) > 1e-4
    assert torch.equal(outs[5][0], outs[21][0]) and torch.equal(outs[5][1], outs[21][1])


def test_per_sample_shift_equals_separate_calls(tiny):
    video, audio, t = _inputs(b=3)
    shifts = torch.tensor([0, 7, 15])
    with torch.no_grad():
        v, a = tiny(video, audio, t, shift=shifts)
        for b in range(3):
            vb, ab = tiny(video[b : b + 1], audio[b : b + 1], t[b : b + 1], shift=int(shifts[b]))
            assert rel_err(v[b : b + 1], vb) < 1e-5 and rel_err(a[b : b + 1], ab) < 1e-5
        other = tiny(video[1:2], audio[1:2], t[1:2], shift=0)
    assert rel_err(v[1:2], other[0]) > 1e-3  # the per-sample shift did change sample 1


def test_drawn_shifts_are_seedable_and_in_range(tiny):
    video, audio, t = _inputs()
    shifts = tiny.draw_shifts(16, torch.Generator().manual_seed(5))
    windows = [s.cross.window if s.cross is not None else None for s in tiny.stages()]
    assert len(shifts) == len(windows)
    for r, w in zip(shifts, windows):
        assert 0 <= r <= (16 - w if w else 0)
    assert any(r > 0 for r in shifts)
    with torch.no_grad():
        a = tiny(video, audio, t, generator=torch.Generator().manual_seed(5))
        b = tiny(video, audio, t, generator=torch.Generator().manual_seed(5))
        c = tiny(video, audio, t, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_checkpointing_reuses_the_drawn_shifts_and_dropout():
    """With activation checkpointing the recomputation must see the same windows and dropout masks:
    gradients equal those of a run without checkpointing."""
    cfg = get_config("tiny", dropout=0.2)
    grads = []
    for use_checkpoint in (False, True):
        model = randomize_(CoupledUNet(cfg.replace(use_checkpoint=use_checkpoint)), seed=4).train()
        video, audio, t = _inputs()
        torch.manual_seed(0)
        v, a = model(video, audio, t, generator=torch.Generator().manual_seed(9))
        (v.square().mean() + a.square().mean()).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-5, atol=1e-7, msg=k)


def test_checkpointing_draws_shifts_once(monkeypatch):
    model = randomize_(CoupledUNet(get_config("tiny", use_checkpoint=True)), seed=4).train()
    seen = []
    original = CrossModalAttention.forward

    def spy(self, video, audio, shift):
        seen.append(shift)
        return original(self, video, audio, shift)

    monkeypatch.setattr(CrossModalAttention, "forward", spy)
    video, audio, t = _inputs()
    v, a = model(video, audio, t, generator=torch.Generator().manual_seed(9))
    forward_shifts = list(seen)
    (v.sum() + a.sum()).backward()
    assert len(seen) == 2 * len(forward_shifts)  # each block recomputed once, in backward
    assert sorted(seen[len(forward_shifts) :]) == sorted(forward_shifts)
    assert len(set(forward_shifts)) > 1  # the draws differ between blocks, so a redraw would show


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 5e-2), (torch.float16, 1e-2)])
def test_autocast_runs_with_fp32_norms(tiny, dtype, tol):
    video, audio, t = _inputs()
    with torch.no_grad():
        ref = tiny(video, audio, t, shift=2)
        with torch.autocast("cpu", dtype=dtype):
            v, a = tiny(video, audio, t, shift=2)
    assert v.dtype == dtype and a.dtype == dtype
    assert rel_err(v, ref[0]) < tol and rel_err(a, ref[1]) < tol


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 8e-2)])
def test_a_model_cast_whole_to_16_bits_runs(tiny, dtype, tol):
    """`model.to(torch.bfloat16)`, the usual way to halve inference memory: the time embedding,
    the norms' affine parameters and the video downsampling meet 16-bit weights (each failed on
    the CPU before), and the output stays within 16-bit rounding of the fp32 model's. (fp16 takes
    the same code; tests/models/test_sr_model.py runs it on the cheaper SR model.)"""
    video, audio, t = _inputs()
    half = randomize_(CoupledUNet("tiny"), seed=3).eval().to(dtype)
    with torch.no_grad():
        ref = tiny(video, audio, t, shift=2)
        v, a = half(video.to(dtype), audio.to(dtype), t, shift=2)
    assert v.dtype == dtype and a.dtype == dtype
    assert rel_err(v, ref[0]) < tol and rel_err(a, ref[1]) < tol


def test_save_and_load_round_trip(tiny, tmp_path):
    path = tmp_path / "tiny.safetensors"
    tiny.save(path)
    loaded = load_model(path, kind=CoupledUNet)
    assert loaded.config == tiny.config
    for (k, a), b in zip(loaded.state_dict().items(), tiny.state_dict().values()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind
    torch.save({"x": torch.zeros(1)}, tmp_path / "pickle.safetensors")
    with pytest.raises(ValueError, match="pickle.safetensors is neither a safetensors file"):
        load_model(tmp_path / "pickle.safetensors", kind=CoupledUNet)


def test_config_round_trips_through_json():
    cfg = get_config("tiny", dropout=0.1)
    assert CoupledUNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown CoupledUNetConfig fields"):
        CoupledUNetConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="unknown preset"):
        get_config("huge")
    with pytest.raises(ValueError, match="window 32 must be in"):
        get_config("tiny", cross_attention_windows=(1, 4, 32))


@pytest.mark.parametrize(
    "mutate,err,match",
    [
        (lambda v, a, t: (v[0], a, t), ValueError, r"video must be \[B, F, C, H, W\] \(5-D\)"),
        (lambda v, a, t: (v, a[:, 0], t), ValueError, r"audio must be \[B, C, L\] \(3-D\)"),
        (lambda v, a, t: (v[:, :, :2], a, t), ValueError, "video must have 3 channels"),
        (lambda v, a, t: (v, a.repeat(1, 2, 1), t), ValueError, "audio must have 1 channels"),
        (
            lambda v, a, t: ((v * 127).to(torch.uint8), a, t),
            TypeError,
            "video must be floating point",
        ),
        (
            lambda v, a, t: (v.double(), a, t),
            TypeError,
            "video is torch.float64 but the model's parameters are torch.float32",
        ),
        (lambda v, a, t: (v, a[:1], t), ValueError, "batch sizes differ"),
        (lambda v, a, t: (v[..., :30, :30], a, t), ValueError, "divisible by 8"),
        (lambda v, a, t: (v, a[..., :4000], t), ValueError, "audio length must be divisible by 64"),
        (lambda v, a, t: (v, a[..., :4032], t), ValueError, "gives 252 samples at level 2"),
        (
            lambda v, a, t: (v[:, :12], a, t),
            ValueError,
            "audio length 4096 gives 1024 samples at level 1, which RS-MMA cannot split into F=12",
        ),
        (
            lambda v, a, t: (v[:, :6], a[..., : 6 * 64], t),
            ValueError,
            "fewer than the largest RS-MMA window 8",
        ),
        (lambda v, a, t: (v, a, t[:1].repeat(3)), ValueError, r"timesteps must be \[B=2\]"),
    ],
)
def test_bad_inputs_are_named(tiny, mutate, err, match):
    video, audio, t = mutate(*_inputs())
    with pytest.raises(err, match=match):
        tiny(video, audio, t, shift=0)


def test_other_sizes_work(tiny):
    """Any size the U-Net can halve and RS-MMA can split: 8 frames of 16x24, L = 8 * 64 * 2."""
    g = torch.Generator().manual_seed(0)
    video = torch.randn(1, 8, 3, 16, 24, generator=g)
    audio = torch.randn(1, 1, 1024, generator=g)
    with torch.no_grad():
        v, a = tiny(video, audio, 10.0, shift=1)
    assert v.shape == video.shape and a.shape == audio.shape and torch.isfinite(v).all()


def test_meta_device_forward_gives_shapes():
    """Shape inference without memory (the benchmarks read the model's shapes this way)."""
    with torch.device("meta"):
        model = CoupledUNet("mmdiffusion-64")
        v, a = model(
            torch.empty(2, 16, 3, 64, 64), torch.empty(2, 1, 25600), torch.zeros(2), shift=3
        )
    assert v.shape == (2, 16, 3, 64, 64) and a.shape == (2, 1, 25600) and v.device.type == "meta"
