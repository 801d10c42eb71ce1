"""The super-resolution U-Net: the release's layout and outputs, presets, files, errors."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import rel_err

from mmfast.models import SuperResUNet, get_sr_config, load_model
from mmfast.models.official_sr import to_official_sr_state_dict


@pytest.fixture(scope="module")
def release(reference_dir):
    """(release-style SR state dict drawn by the reference rule, the recorded forward pass)."""
    ref = torch.load(reference_dir / "official_sr_fwd.pt", weights_only=True)
    layout = json.loads((reference_dir / "official_sr_params.json").read_text())
    g = torch.Generator().manual_seed(int(ref["seed_weights"]))
    sd = {
        e["name"]: torch.randn(e["shape"], generator=g) * float(ref["weight_std"])
        for e in layout["state_dict"]
    }
    return sd, ref, layout


def test_release_layout_and_size(release):
    sd, _, layout = release
    model = SuperResUNet("sr-256")
    assert sum(p.numel() for p in model.parameters()) == layout["num_parameters"] == 311_027_910
    back = to_official_sr_state_dict(model)
    assert list(back) == [e["name"] for e in layout["state_dict"]]  # names and order
    assert all(tuple(back[e["name"]].shape) == tuple(e["shape"]) for e in layout["state_dict"])


def test_forward_matches_release(release):
    sd, ref, _ = release
    model = load_model(sd).eval()
    assert isinstance(model, SuperResUNet)  # told apart from the coupled layout by its names
    assert torch.equal(
        to_official_sr_state_dict(model)["middle_block.1.qkv.weight"],
        sd["middle_block.1.qkv.weight"],
    )
    with torch.no_grad():
        out = model(ref["x_t"], ref["timesteps"], ref["low_res"])
    assert out.shape == (1, 6, 256, 256)
    assert rel_err(out[:, :3], ref["out"][:, :3]) < 1e-4  # eps
    assert rel_err(out[:, 3:], ref["out"][:, 3:]) < 1e-4  # variance values


def test_tiny_preset_shapes_and_round_trip(tmp_path):
    cfg = get_sr_config("tiny-sr")
    model = SuperResUNet(cfg)
    g = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.data.copy_(torch.randn(p.shape, generator=g) * 0.05)
    x = torch.randn(2, 3, 128, 128, generator=g)
    low = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    t = torch.tensor([3.0, 917.0])
    with torch.no_grad():
        out = model(x, t, low)
    assert out.shape == (2, 6, 128, 128) and torch.isfinite(out).all()
    model.save(tmp_path / "sr.safetensors")
    back = load_model(tmp_path / "sr.safetensors", kind=SuperResUNet)
    assert back.config == cfg
    with torch.no_grad():
        torch.testing.assert_close(back(x, t, low), out, rtol=0, atol=0)


def test_inputs_are_checked():
    model = SuperResUNet("tiny-sr")
    x, low = torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"x_t must be \[B, 3, 128, 128\], got \(1, 3, 64, 64\)"):
        model(torch.zeros(1, 3, 64, 64), 0, low)
    with pytest.raises(
        ValueError, match=r"low_res must be \[B=1, 3, 32, 32\], got \(1, 3, 128, 128\)"
    ):
        model(x, 0, x)
    with pytest.raises(ValueError, match=r"timesteps must be \[B=1\]"):
        model(x, torch.zeros(2), low)


def test_a_file_of_another_kind_is_named(tmp_path):
    from mmfast.models import CoupledUNet

    CoupledUNet("tiny").save(tmp_path / "base.safetensors")
    with pytest.raises(ValueError, match="holds a CoupledUNet, not a SuperResUNet"):
        load_model(tmp_path / "base.safetensors", kind=SuperResUNet)
    SuperResUNet("tiny-sr").save(tmp_path / "sr.safetensors")
    with pytest.raises(ValueError, match="holds a SuperResUNet, not a CoupledUNet"):
        load_model(tmp_path / "sr.safetensors", kind=CoupledUNet)


def test_a_base_model_checkpoint_is_not_an_sr_one(release):
    from mmfast.models import CoupledUNet
    from mmfast.models.official import to_official_state_dict

    with pytest.raises(ValueError, match="does not match the model"):
        load_model(to_official_state_dict(CoupledUNet("tiny")), kind=SuperResUNet, config="tiny-sr")


SMALL = dict(
    large_size=32,
    small_size=8,
    model_channels=16,
    channel_mult=(1, 2),
    attention_resolutions=(2,),
    norm_groups=8,
)


def _small_model(seed: int) -> SuperResUNet:
    model = SuperResUNet(get_sr_config("tiny-sr", **SMALL))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(2, 3, 32, 32, generator=g),
        torch.tensor([10.0, 700.0]),
        torch.rand(2, 3, 8, 8, generator=g) * 2 - 1,
    )


def test_compiles_fullgraph_forward_and_backward():
    """No graph breaks (aot_eager: Dynamo and AOTAutograd, without Inductor's C++ build)."""
    model = _small_model(1)
    x, t, low = _inputs(2)
    grads = []
    torch._dynamo.reset()
    try:
        for fn in (model, torch.compile(model, fullgraph=True, backend="aot_eager")):
            model.zero_grad()
            out = fn(x, t, low)
            out.square().mean().backward()
            grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[1][1], grads[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_autocast_keeps_fp32_norm_statistics(dtype, monkeypatch):
    """Under autocast the convs and attention run in 16 bits, the GroupNorms in fp32: the output
    stays within 16-bit rounding of the fp32 one."""
    model = _small_model(3).eval()
    x, t, low = _inputs(4)
    with torch.no_grad():
        want = model(x, t, low)
        seen = []
        group_norm = torch.nn.functional.group_norm
        monkeypatch.setattr(
            torch.nn.functional,
            "group_norm",
            lambda h, *a, **k: seen.append(h.dtype) or group_norm(h, *a, **k),
        )
        with torch.autocast("cpu", dtype=dtype):
            got = model(x, t, low)
    assert got.dtype == dtype
    assert seen and set(seen) == {torch.float32}
    assert rel_err(got.float(), want) < (3e-2 if dtype == torch.bfloat16 else 5e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_a_model_cast_whole_to_16_bits_runs(dtype):
    """The SR U-Net after `.to(dtype)`: 16-bit time embedding and norm parameters, fp32 norm
    statistics; the output stays within 16-bit rounding of the fp32 model's."""
    model = _small_model(3).eval()
    x, t, low = _inputs(4)
    with torch.no_grad():
        want = model(x, t, low)
        got = model.to(dtype)(x.to(dtype), t, low.to(dtype))
    assert got.dtype == dtype
    assert rel_err(got.float(), want) < (6e-2 if dtype == torch.bfloat16 else 1e-2)
