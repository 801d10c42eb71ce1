"""AudioCLIP's audio head: the weight file's layout, strict loading from the full and the audio-only
state dict, the window, the frame rule, LinearFBSP and the spectrogram against float64
transcriptions of the original's maths, the channel sum and the input checks, on seeded random
weights (the real file is not available here)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from helpers import extractor_layout, he_init_, layout_of, rel_err

from mmfast.eval.audioclip import (
    AUDIOCLIP_FILE,
    AUDIOCLIP_SOURCE,
    BLACKMAN_HARRIS,
    Bottleneck,
    ESResNeXtFBSP,
    LinearFBSP,
    blackman_harris,
    frame_signal,
    load_audioclip_audio,
    num_frames,
)
from mmfast.eval.weights import WeightFileError

LAYOUT = extractor_layout("audioclip_audio")
L_16 = 70560  # 1.6 s at 44.1 kHz, MM-Diffusion's clip
EPS = 1e-8  # LinearFBSP's


def _randomize_(model: ESResNeXtFBSP, seed: int) -> ESResNeXtFBSP:
    """He-scaled convs, BatchNorm near identity (activations O(1)), and the window and the basis's m, fb, fc moved
    off their initial values, so that every entry of the state dict changes the output."""
    he_init_(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        # Inputs are dB near -30: bn1 scales conv1's output to O(1), and the residual branches
        # are damped so that the 16 blocks do not blow the features up.
        model.bn1.running_var.mul_(1600)
        for m in model.modules():
            if isinstance(m, Bottleneck):
                m.bn3.weight.mul_(0.3)
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape, generator=g) / math.sqrt(2048))
        model.fc.bias.copy_(torch.randn(model.fc.bias.shape, generator=g))
        model.window.mul_(1 + 0.01 * torch.randn(model.window.shape, generator=g))
        _randomize_fbsp_(model.fbsp, g)
    return model.eval()


def _randomize_fbsp_(fbsp: LinearFBSP, g: torch.Generator) -> None:
    k = fbsp.out_features
    with torch.no_grad():
        fbsp.m.copy_(0.2 + 1.8 * torch.rand(k, generator=g))
        fbsp.fb.copy_(0.3 + 2.7 * torch.rand(k, generator=g))
        fbsp.fc.copy_(torch.arange(k) + 0.5 * torch.randn(k, generator=g))


def _reference_basis(fbsp: LinearFBSP, n: int) -> torch.Tensor:
    """The original's `_materialize_weights` in complex128: sqrt(fb) * sinc(fb t / (m + eps))^m
    (the complex power, principal branch: a negative sinc gets phase pi m) * exp(-i fc t),
    / sqrt(n). [K, n]."""
    t = (math.pi * torch.linspace(-1.0, 1.0, n, dtype=torch.float64) + EPS)[None]
    m, fb, fc = (p.detach().double()[:, None] for p in (fbsp.m, fbsp.fb, fbsp.fc))
    arg = fb * t / (m + EPS)
    sinc = torch.where(arg == 0, torch.ones_like(arg), torch.sin(arg) / arg)
    win = sinc.to(torch.complex128) ** m
    return fb.sqrt() * win * torch.exp(-1j * fc * t) / math.sqrt(n)


def _reference_spectrogram(model: ESResNeXtFBSP, wave: torch.Tensor) -> torch.Tensor:
    """The original's `_forward_pre_processing` up to the dB, in float64: [B, C, 3, 341, T]."""
    batch, channels, length = wave.shape
    x = wave.double().reshape(-1, length)
    x = ((x - -32768.0) * 2.0) / (32767 - -32768.0) + -1.0  # transforms.scale
    frames = 1 if length <= 1654 else 1 + math.ceil((length - 1654) / 561)
    zeros = torch.zeros(x.shape[0], (frames - 1) * 561 + 1654 - length, dtype=x.dtype)
    x = torch.cat((zeros[:, : zeros.shape[1] // 2], x, zeros[:, zeros.shape[1] // 2 :]), dim=1)
    index = torch.arange(1654)[None] + 561 * torch.arange(frames)[:, None]
    frames = F.pad(x[:, index] * model.window.double(), (197, 197))  # [B * C, T, 2048]
    spec = frames.to(torch.complex128) @ _reference_basis(model.fbsp, 2048).T
    spec = spec.transpose(1, 2)[:, :1023].reshape(batch, channels * 3, 341, -1)
    power = spec.abs() ** 2
    power = torch.where(power > 0, power, torch.full_like(power, 1e-18))
    return 10 * torch.log10(power.reshape(batch, channels, 3, 341, -1))


@pytest.fixture(scope="module")
def source() -> ESResNeXtFBSP:
    return _randomize_(ESResNeXtFBSP(), seed=0)


@pytest.fixture(scope="module")
def waves() -> torch.Tensor:
    """Two 1.6 s mono clips in int16 scale: white noise, and a 440 Hz tone in quieter noise."""
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(2, L_16, generator=g)
    tone = 8000 * torch.sin(2 * math.pi * 440 * torch.arange(L_16) / 44100)
    return torch.stack((3000 * noise[0], tone + 300 * noise[1]))[:, None]


@pytest.fixture(scope="module")
def short_waves() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randn(2, 1, 8000, generator=g) * 3000


@pytest.fixture(scope="module")
def audio_state(source) -> dict[str, torch.Tensor]:
    """The head's entries as the full model names them, without the BatchNorm counters."""
    return {
        "audio." + k: v.clone()
        for k, v in source.state_dict().items()
        if not k.endswith(".num_batches_tracked")
    }


@pytest.fixture(scope="module")
def audio_file(audio_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("audioclip") / "audio_only.pt"
    torch.save(audio_state, path)
    return path


@pytest.fixture(scope="module")
def full_file(source, tmp_path_factory):
    """The full model's layout: audio.* with counters, then some of the image/text entries."""
    state = {"audio." + k: v.clone() for k, v in source.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    for row in LAYOUT["full_checkpoint"]["other_keys"][:12]:
        if row["dtype"] == "int64":
            state[row["name"]] = torch.zeros(row["shape"], dtype=torch.int64)
        else:
            state[row["name"]] = torch.randn(row["shape"], generator=g)
    assert "visual.conv1.weight" in state and "logit_scale" in state
    path = tmp_path_factory.mktemp("audioclip") / AUDIOCLIP_FILE
    torch.save(state, path)
    return path


def test_layout_is_the_weight_files(source):
    rows = LAYOUT["state_dict"]
    want = {row["name"]: (row["shape"], row["dtype"]) for row in rows}
    assert len(want) == LAYOUT["num_state_dict_entries"] == 370
    got = layout_of(source, prefix="audio.")
    assert got == want
    assert list(got) == [row["name"] for row in rows]  # module order too
    assert sum(p.numel() for p in source.parameters()) == LAYOUT["num_params"] == 32_104_771
    assert sum(b.numel() for b in source.buffers()) == LAYOUT["num_buffer_elements"]
    assert source.fbsp.bias.shape == (0,) and "window" in dict(source.named_buffers())
    # The other entries of the full checkpoint: none would be taken for the head's.
    full = LAYOUT["full_checkpoint"]
    assert full["num_state_dict_entries"] == 370 + len(full["other_keys"]) == 861
    assert not [r for r in full["other_keys"] if r["name"].startswith("audio.")]
    assert AUDIOCLIP_SOURCE in LAYOUT["weight_file"]


def test_full_and_audio_only_files_load_alike(source, full_file, audio_file, short_waves):
    full, audio_only = load_audioclip_audio(full_file), load_audioclip_audio(audio_file)
    assert not full.training and not audio_only.training
    full_state, audio_only_state = full.state_dict(), audio_only.state_dict()
    for k, v in source.state_dict().items():
        if not k.endswith(".num_batches_tracked"):
            assert torch.equal(full_state[k], v), k
            assert torch.equal(audio_only_state[k], v), k
    with torch.no_grad():
        want, a, b = source(short_waves), full(short_waves), audio_only(short_waves)
    assert a.shape == (2, 1024) and torch.isfinite(a).all() and a.std() > 0.1
    assert torch.equal(a, b)
    torch.testing.assert_close(a, want, rtol=0, atol=1e-6)


def _drop(state, key):
    del state[key]


def _add(state, key):
    state[key] = torch.ones(1024)


def _reshape(state, key):
    state[key] = torch.zeros(1025, 2)  # the basis's bias as LinearFBSP(bias=True) would have it


def _retype(state, key):
    state[key] = state[key].double()


@pytest.mark.parametrize(
    "edit, key",
    [
        (_drop, "audio.layer3.4.bn2.running_var"),
        (_add, "audio.att5.bn.scale"),
        (_reshape, "audio.fbsp.bias"),
        (_retype, "audio.window"),
    ],
    ids=["missing", "extra", "wrong_shape", "wrong_dtype"],
)
def test_a_file_that_does_not_fit_names_the_key(audio_state, tmp_path, edit, key):
    state = dict(audio_state)
    edit(state, key)
    path = tmp_path / AUDIOCLIP_FILE
    torch.save(state, path)
    with pytest.raises(WeightFileError, match=re.escape(key)):
        load_audioclip_audio(path)


def test_a_file_without_audio_keys_is_not_audioclip(tmp_path):
    path = tmp_path / "clip.pt"
    torch.save(
        {"visual.conv1.weight": torch.zeros(32, 3, 3, 3), "logit_scale": torch.ones(())}, path
    )
    with pytest.raises(WeightFileError, match="not an AudioCLIP checkpoint"):
        load_audioclip_audio(path)


@pytest.mark.parametrize("where", ["none", "missing"])
def test_no_file_names_the_option(tmp_path, where):
    path = None if where == "none" else tmp_path / AUDIOCLIP_FILE
    with pytest.raises(WeightFileError, match="--audioclip"):
        load_audioclip_audio(path)


def test_window_is_periodic_blackman_harris():
    n = 1654
    formula = torch.tensor(
        [
            sum(
                (-1) ** k * a * math.cos(2 * math.pi * k * i / n)
                for k, a in enumerate(BLACKMAN_HARRIS)
            )
            for i in range(n)
        ],
        dtype=torch.float64,
    )
    assert BLACKMAN_HARRIS == (0.35875, 0.48829, 0.14128, 0.01168)
    window = ESResNeXtFBSP().window
    assert window.dtype == torch.float32 and window.shape == (n,)
    torch.testing.assert_close(window, formula.float(), rtol=0, atol=0)
    torch.testing.assert_close(blackman_harris(n, torch.float64), formula, rtol=0, atol=1e-15)
    # Periodic: w[i] = w[n - i], and the peak 1 at n / 2.
    torch.testing.assert_close(window[1:], window[1:].flip(0), rtol=0, atol=1e-7)
    assert window[n // 2] == 1
    try:
        from scipy.signal import get_window
    except ImportError:
        return
    scipy_window = torch.from_numpy(get_window("blackmanharris", n, fftbins=True))
    assert torch.equal(window, scipy_window.float())


LENGTHS = [1, 1000, 1653, 1654, 1655, 2215, 2216, 70560, 220500]


def test_frame_count_is_the_contracts_rule():
    for length in LENGTHS:
        want = 1 if length <= 1654 else 1 + math.ceil((length - 1654) / 561)
        assert num_frames(length) == want, length
    assert [num_frames(n) for n in (1654, 1655, 2215, 2216, 70560, 220500)] == [
        1,
        2,
        2,
        3,
        124,
        392,
    ]


@pytest.mark.parametrize("length", LENGTHS, ids=str)
def test_frames_pad_the_floor_half_in_front(length):
    x = torch.arange(1, length + 1, dtype=torch.float64)[None]  # no zeros in the signal
    frames = frame_signal(x)
    n = num_frames(length)
    assert frames.shape == (1, n, 1654)
    pad = (n - 1) * 561 + 1654 - length
    padded = torch.cat((torch.zeros(pad // 2), x[0], torch.zeros(pad - pad // 2)))
    for i in range(n):
        assert torch.equal(frames[0, i], padded[561 * i : 561 * i + 1654]), i


@pytest.mark.parametrize("length", [1000, 1654, L_16, 220500], ids=str)
def test_spectrogram_width_is_the_frame_count(source, length):
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        spec = source.spectrogram(torch.randn(1, 1, length, generator=g) * 3000)
    assert spec.shape == (1, 1, 3, 341, num_frames(length))


def test_linear_fbsp_at_init_is_not_the_dft():
    """m = 0, fb = 1, fc = k: |sinc|^0 = 1, so W_kn = exp(-i k t_n) / sqrt(N) with t_n = pi (-1 +
    2 n / (N - 1)) + eps: a DFT of period N - 1 times (-1)^k, not the N-point DFT."""
    n, fbsp = 2048, LinearFBSP(1025)
    basis = fbsp.basis(n)
    assert basis.shape == (1025, n, 2) and basis.dtype == torch.float64
    got = torch.complex(basis[..., 0], basis[..., 1])
    k, i = torch.arange(1025, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)
    closed = (-1) ** k * torch.exp(-1j * k * EPS) * torch.exp(-2j * math.pi * k * i / (n - 1))
    torch.testing.assert_close(got, closed / math.sqrt(n), rtol=0, atol=1e-11)
    torch.testing.assert_close(got, _reference_basis(fbsp, n), rtol=0, atol=1e-12)
    # Not the DFT, in phase or in power.
    dft = torch.exp(-2j * math.pi * k * i / n) / math.sqrt(n)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, n, generator=g, dtype=torch.float64)
    power = lambda w: (x.to(w.dtype) @ w.T).abs() ** 2
    assert rel_err(power(got), power(dft)) > 0.1
    torch.testing.assert_close(power(got)[:, 0], power(dft)[:, 0])  # only bin 0 agrees


def test_linear_fbsp_matches_the_originals_maths():
    """Random m, fb, fc (so that sinc goes negative and the complex power's phase shows): the basis
    in float64 and the float32 layer's output against the complex128 transcription."""
    g = torch.Generator().manual_seed(6)
    fbsp = LinearFBSP(1025)
    _randomize_fbsp_(fbsp, g)
    ref = _reference_basis(fbsp, 2048)
    basis = fbsp.basis(2048)
    t = math.pi * torch.linspace(-1, 1, 2048, dtype=torch.float64) + EPS
    arg = fbsp.fb.detach().double()[:, None] * t / (fbsp.m.detach().double()[:, None] + EPS)
    assert (torch.sin(arg) / arg < 0).double().mean() > 0.05
    torch.testing.assert_close(torch.complex(basis[..., 0], basis[..., 1]), ref, rtol=0, atol=1e-12)
    x = torch.randn(3, 5, 2048, generator=g)
    with torch.no_grad():
        out = fbsp(x)
    assert out.shape == (3, 5, 1025, 2) and out.dtype == torch.float32
    want = x.double().to(torch.complex128) @ ref.T
    assert rel_err(out, torch.view_as_real(want)) < 1e-5
    assert LinearFBSP(1025, normalized=False).basis(2048).abs().max() > 0.99  # no 1 / sqrt(N)


def test_spectrogram_matches_the_originals_preprocessing(source):
    """Two channels of 1.6 s with the randomised window and basis against the float64
    transcription: scale, frames, window, padding to 2048, basis, bands, power, dB."""
    g = torch.Generator().manual_seed(7)
    wave = torch.randn(1, 2, L_16, generator=g) * 3000
    with torch.no_grad():
        spec = source.spectrogram(wave)
    assert spec.shape == (1, 2, 3, 341, 124) and spec.dtype == torch.float32
    want = _reference_spectrogram(source, wave)
    torch.testing.assert_close(spec.double(), want, rtol=0, atol=2e-3)
    assert rel_err(spec, want) < 1e-6
    # Integer samples are cast as floats; the wave that scales to exactly 0 gives 10 log10(1e-18).
    with torch.no_grad():
        ints = wave[..., :5000].round().to(torch.int16)
        torch.testing.assert_close(source.spectrogram(ints), source.spectrogram(ints.float()))
        silent = source.spectrogram(torch.full((1, 1, 5000), -0.5))
    torch.testing.assert_close(silent, torch.full_like(silent, -180.0), rtol=0, atol=1e-4)


def test_forward_is_finite_and_batch_independent(source, waves):
    with torch.no_grad():
        got = source(waves)
        singles = torch.cat([source(w[None]) for w in waves])
    assert got.shape == (2, 1024) and got.dtype == torch.float32
    assert torch.isfinite(got).all() and got.std() > 0.1
    assert rel_err(got[0], got[1]) > 0.05
    torch.testing.assert_close(singles, got, rtol=1e-4, atol=1e-4)


def test_channels_are_summed_before_fc(source, waves):
    """The original sums the attention-pooled 2048-d features of each channel, then applies fc:
    so the sum of two mono embeddings exceeds the stereo embedding by fc's bias."""
    stereo = waves.transpose(0, 1)  # [1, 2, L]: the two clips as left and right
    with torch.no_grad():
        mono_features = source.channel_features(waves)  # [2, 1, 2048]
        stereo_features = source.channel_features(stereo)
        got = source(stereo)
        mono = source(waves)
    assert stereo_features.shape == (1, 2, 2048)
    torch.testing.assert_close(stereo_features[0], mono_features[:, 0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[0], source.fc(mono_features.sum(0)[0]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mono.sum(0) - got[0], source.fc.bias, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((L_16,), torch.float32),
        ((1, L_16), torch.float32),
        ((1, 1, 1, L_16), torch.float32),
        ((1, 1, 0), torch.float32),
        ((0, 1, L_16), torch.float32),
        ((1, 1, L_16), torch.complex64),
        ((1, 1, L_16), torch.bool),
    ],
    ids=["1d", "2d", "4d", "empty", "no_batch", "complex", "bool"],
)
def test_bad_input_names_the_expected_shape(source, shape, dtype):
    with pytest.raises(ValueError, match=re.escape("expects wave [B, C, L]")):
        source(torch.zeros(shape, dtype=dtype))
