"""VGGish: the weight files' layouts, strict loading of both, the PCA file read without running
pickled code, the postprocess, and the log-mel front end against a float64 NumPy transcription of
AudioSet's maths (the real files are not available here; weights are seeded random)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from helpers import extractor_layout, layout_of

from mmfast.eval.vggish import (
    VGGish,
    VGGishPCA,
    examples,
    load_vggish,
    load_vggish_pca,
    log_mel,
    mel_matrix,
)
from mmfast.eval.weights import WeightFileError

TORCHAUDIO = extractor_layout("vggish_torchaudio")
TORCHVGGISH = extractor_layout("vggish_torchvggish")
KEY_MAP = extractor_layout("vggish_key_map")["map"]
TO_TORCHVGGISH = {v: k for k, v in KEY_MAP.items()}


@pytest.fixture(scope="module")
def source() -> VGGish:
    """He-scaled seeded random weights, except that Linear(12288, 4096)'s rows are constants
    (unit i sees u_i * mean(features)): it is 200 of the 290 MB, too slow to draw, write and read
    here, and no key can take its place (its shape is unique)."""
    g = torch.Generator().manual_seed(0)
    model = VGGish()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                if fan_in == 12288:
                    column = torch.randn(m.weight.shape[0], 1, generator=g) * 2**0.5 / fan_in
                    m.weight.copy_(column.expand(m.weight.shape))
                else:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan_in) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(3, 1, 96, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def pca_arrays() -> dict[str, np.ndarray]:
    """Random float64 PCA parameters, scaled so that some outputs clip at each end."""
    g = np.random.default_rng(2)
    return {"pca_eigen_vectors": g.standard_normal((128, 128)) / 8, "pca_means": g.random(128)}


@pytest.fixture(scope="module")
def weight_files(source, tmp_path_factory) -> dict[str, object]:
    """The source's weights in torchaudio's file and in torchvggish's."""
    root = tmp_path_factory.mktemp("vggish")
    state = dict(source.state_dict())
    first = state["embedding_network.0.weight"]
    state["embedding_network.0.weight"] = first[:, :1].expand(first.shape)  # one column on disk
    torch.save(state, root / "vggish.pt")
    torch.save({TO_TORCHVGGISH[k]: v for k, v in state.items()}, root / "vggish-10086976.pth")
    return {name: root / name for name in ("vggish.pt", "vggish-10086976.pth")}


def _placeholders(layout: str) -> dict[str, torch.Tensor]:
    """A state of broadcast zeros with the keys and shapes of `layout`'s file, a few bytes on
    disk (torch.save keeps the one-element storage)."""
    state = {r["name"]: torch.zeros(1).expand(r["shape"]) for r in TORCHAUDIO["state_dict"]}
    if layout == "torchvggish":
        state = {TO_TORCHVGGISH[k]: v for k, v in state.items()}
    return state


def _torchaudio_name(key: str) -> str:
    """The key map's rule: a prefix rename."""
    for old, new in (("features.", "features_network."), ("embeddings.", "embedding_network.")):
        if key.startswith(old):
            return new + key.removeprefix(old)
    return key


def test_layout_is_torchaudios_and_the_key_map_gives_torchvggishs():
    want = {r["name"]: (r["shape"], r["dtype"]) for r in TORCHAUDIO["state_dict"]}
    model = VGGish()
    assert len(want) == TORCHAUDIO["num_state_dict_entries"] == 18
    assert layout_of(model) == want
    assert sum(p.numel() for p in model.parameters()) == TORCHAUDIO["num_params"] == 72_141_184
    rows = [r for r in TORCHVGGISH["state_dict"] if not r["name"].startswith("pproc.")]
    assert len(rows) == 18 and set(KEY_MAP) == {r["name"] for r in rows}
    assert {KEY_MAP[r["name"]]: (r["shape"], r["dtype"]) for r in rows} == want
    assert all(_torchaudio_name(k) == v for k, v in KEY_MAP.items())


def test_both_file_layouts_load_to_the_same_network(
    source, batch, weight_files, pca_arrays, tmp_path
):
    torch.save(pca_arrays, tmp_path / "pca.pth")
    with torch.no_grad():
        want = source(batch)
        plain = load_vggish(weight_files["vggish.pt"])
        assert not plain.training and plain.pca is None
        assert torch.equal(plain(batch), want)
        del plain
        # torchvggish's file, and its PCA file, applied after the embedding.
        post = load_vggish(weight_files["vggish-10086976.pth"], pca_path=tmp_path / "pca.pth")
        assert not post.training and isinstance(post.pca, VGGishPCA)
        assert torch.equal(post(batch), post.pca(want))
    assert want.shape == (3, 128) and want.dtype == torch.float32
    assert (want >= 0).all() and (want == 0).any() and want.std() > 0.1  # after the final ReLU


def _drop(state, key):
    del state[key]


def _add(state, key):
    state[key] = torch.zeros(128, 1)


def _reshape(state, key):
    state[key] = torch.zeros(1).expand(127, 4096)


@pytest.mark.parametrize(
    "layout, edit, key",
    [
        ("torchaudio", _drop, "features_network.8.bias"),
        ("torchaudio", _reshape, "embedding_network.4.weight"),
        ("torchvggish", _add, "pproc.pca_means"),  # VGGish(postprocess=True).state_dict()
        ("torchvggish", _reshape, "embeddings.4.weight"),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_a_file_that_does_not_fit_names_the_key(tmp_path, layout, edit, key):
    state = _placeholders(layout)
    want = {
        r["name"] for r in (TORCHAUDIO if layout == "torchaudio" else TORCHVGGISH)["state_dict"]
    }
    assert set(state) == want - {"pproc.pca_eigen_vectors", "pproc.pca_means"}
    edit(state, key)
    torch.save(state, tmp_path / "bad.pt")
    assert (tmp_path / "bad.pt").stat().st_size < 100_000
    with pytest.raises(WeightFileError, match=re.escape(_torchaudio_name(key))):
        load_vggish(tmp_path / "bad.pt")


def test_no_file_names_the_option(tmp_path):
    with pytest.raises(WeightFileError, match="--vggish"):
        load_vggish(None)
    with pytest.raises(WeightFileError, match="no such file"):
        load_vggish(tmp_path / "vggish.pt")


@pytest.mark.parametrize("kind", ["float64_arrays", "float32_arrays", "numpy1_names", "tensors"])
def test_pca_file_loads_without_running_code(pca_arrays, tmp_path, kind):
    path = tmp_path / "vggish_pca_params-970ea276.pth"
    if kind == "float64_arrays":
        torch.save(pca_arrays, path)
    elif kind == "float32_arrays":
        torch.save({k: v.astype(np.float32) for k, v in pca_arrays.items()}, path)
    elif kind == "numpy1_names":
        # The 2019 file was written under numpy 1, which names the reconstructor
        # numpy.core.multiarray: the legacy format's pickle is plain bytes to rename it in.
        torch.save(pca_arrays, path, _use_new_zipfile_serialization=False)
        data = path.read_bytes()
        assert data.count(b"numpy._core.multiarray") == 1
        path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    else:
        vectors, means = (torch.from_numpy(v).float() for v in pca_arrays.values())
        torch.save({"pca_eigen_vectors": vectors, "pca_means": means[:, None]}, path)
    if kind != "numpy1_names":
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        assert unsafe <= {"numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}
    pca = load_vggish_pca(path)
    assert isinstance(pca, VGGishPCA) and not pca.training
    want = {k: torch.from_numpy(v).float() for k, v in pca_arrays.items()}
    torch.testing.assert_close(pca.eigen_vectors, want["pca_eigen_vectors"], rtol=0, atol=0)
    torch.testing.assert_close(pca.means, want["pca_means"], rtol=0, atol=0)


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


@pytest.mark.parametrize(
    "content, match",
    [
        ({"pca_eigen_vectors": _Payload(), "pca_means": np.zeros(128)}, "is not a readable"),
        ({"pca_eigen_vectors": np.zeros((128, 128), np.int64)}, "is not a readable"),
        ({"pca_eigen_vectors": np.zeros((128, 128))}, "missing pca_means"),
        ({"pca_eigen_vectors": np.zeros((128, 128)), "pca_means": np.zeros(127)}, "pca_means: "),
        ({"pca_eigen_vectors": torch.zeros(128, 128), "pca_means": "0"}, "pca_means: a str"),
    ],
    ids=["code", "int_dtype", "missing", "wrong_shape", "not_an_array"],
)
def test_a_pca_file_that_does_not_fit_is_refused(tmp_path, capfd, content, match):
    path = tmp_path / "pca.pth"
    torch.save(content, path)
    with pytest.raises(WeightFileError, match=re.escape(match)):
        load_vggish_pca(path)
    assert "pickled code ran" not in capfd.readouterr().out
    with pytest.raises(WeightFileError, match=re.escape("load_vggish_pca(path)")):
        load_vggish_pca(None)


def test_pca_postprocess_is_torchvggishs_formula(pca_arrays):
    vectors, means = pca_arrays["pca_eigen_vectors"], pca_arrays["pca_means"]
    g = np.random.default_rng(3)
    emb = np.maximum(g.standard_normal((64, 128)), 0)
    want = np.round((np.clip((emb - means) @ vectors.T, -2, 2) + 2) * 255 / 4)
    assert (want == 0).any() and (want == 255).any()
    pca = VGGishPCA()
    pca.eigen_vectors.copy_(torch.from_numpy(vectors))
    pca.means.copy_(torch.from_numpy(means))
    pca64 = VGGishPCA().double()
    pca64.eigen_vectors.copy_(torch.from_numpy(vectors))
    pca64.means.copy_(torch.from_numpy(means))
    np.testing.assert_array_equal(pca64(torch.from_numpy(emb)).numpy(), want)
    # float32 may round the other way only where the float64 value is within float32 noise of a
    # half-integer: an occasional difference of 1.
    got = pca(torch.from_numpy(emb).float()).numpy()
    assert np.abs(got - want).max() <= 1 and np.mean(got != want) < 0.01
    with pytest.raises(ValueError, match=re.escape("[n, 128]")):
        pca(torch.zeros(128))


def _log_mel_numpy(wave: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """AudioSet's mel_features.log_mel_spectrogram with VGGish's parameters, all in `dtype`:
    (log-mel frames [T, 64], mel weights [257, 64])."""
    wave = wave.astype(dtype)
    count = 1 + (len(wave) - 400) // 160
    frames = np.stack([wave[160 * t : 160 * t + 400] for t in range(count)])
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)).astype(dtype)
    spectrum = np.abs(np.fft.rfft(frames * window, 512)).astype(dtype)
    mel = lambda hz: 1127.0 * np.log(1 + hz / 700.0)
    bins = mel(np.linspace(0, 8000, 257))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((257, 64))
    for i in range(64):
        lower, centre, upper = edges[i : i + 3]
        rising, falling = (bins - lower) / (centre - lower), (upper - bins) / (upper - centre)
        weights[:, i] = np.maximum(0, np.minimum(rising, falling))
    weights[0] = 0
    return np.log(spectrum @ weights.astype(dtype) + dtype(0.01)), weights


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    """1.6 s of a loud 440 Hz tone over quiet noise: most bands far below the loudest bin, as in
    real audio (where float32's error shows)."""
    t = np.arange(25600) / 16000
    noise = np.random.default_rng(4).standard_normal(25600)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * noise).astype(np.float32)


def test_mel_matrix_is_audiosets_not_torchaudios(wave):
    _, want = _log_mel_numpy(wave, np.float64)
    np.testing.assert_allclose(mel_matrix().numpy(), want, rtol=0, atol=1e-12)
    # torchaudio's triangles (same edges, linear in Hz) are not float noise away: why
    # mel_matrix exists.
    theirs = AF.melscale_fbanks(257, 125.0, 7500.0, 64, 16000, norm=None, mel_scale="htk")
    assert np.abs(theirs.double().numpy() - want).max() > 1e-3


def test_log_mel_matches_audiosets_maths(wave):
    want, _ = _log_mel_numpy(wave, np.float64)
    numpy32, _ = _log_mel_numpy(wave, np.float32)
    got64 = log_mel(torch.from_numpy(wave).double())
    got32 = log_mel(torch.from_numpy(wave))
    assert got64.shape == got32.shape == want.shape == (158, 64)
    assert got64.dtype == torch.float64 and got32.dtype == torch.float32
    # In float64 the two differ only by rounding (FFT algorithms, sum order): ~1e-14.
    np.testing.assert_allclose(got64.numpy(), want, rtol=0, atol=1e-10)
    # In float32, the FFT's error is relative to the loudest bin, and log(mel + 0.01) turns it
    # into an absolute error up to 100x larger in the quiet bands. The yardstick is the same
    # transcription run in float32 (9e-6 here). torch's float32 FFT takes another code path per
    # CPU: 4.3x the yardstick on an AVX-512 Xeon, under 4x on others; allow 10x it plus a floor.
    # A wrong window, mel matrix or log offset is off by 1e-3 or more.
    budget = 10 * np.abs(numpy32 - want).max() + 1e-6
    assert np.abs(got32.numpy() - want).max() <= budget
    pair = torch.from_numpy(np.stack([wave, wave[::-1].copy()]))
    batched = log_mel(pair)
    assert batched.shape == (2, 158, 64)
    torch.testing.assert_close(batched[0], got32, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched[1], log_mel(pair[1]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("samples, frames", [(400, 1), (559, 1), (560, 2), (25600, 158)])
def test_frame_count_is_one_plus_whole_hops_after_the_first_window(samples, frames):
    assert frames == 1 + (samples - 400) // 160
    assert log_mel(torch.zeros(samples)).shape == (frames, 64)
    assert log_mel(torch.zeros(2, 1, samples)).shape == (2, 1, frames, 64)


@pytest.mark.parametrize(
    "count, plain, covered", [(96, 1, 1), (158, 1, 2), (191, 1, 2), (192, 2, 2), (193, 2, 3)]
)
def test_examples_drop_or_cover_the_tail(count, plain, covered):
    frames = torch.arange(count, dtype=torch.float32)[:, None] + torch.zeros(64)
    out = examples(frames)
    assert out.shape == (plain, 1, 96, 64)
    torch.testing.assert_close(out.reshape(-1, 64), frames[: 96 * plain], rtol=0, atol=0)
    out = examples(frames, cover_tail=True)
    assert out.shape == (covered, 1, 96, 64)
    torch.testing.assert_close(out[:plain].reshape(-1, 64), frames[: 96 * plain], rtol=0, atol=0)
    torch.testing.assert_close(out[-1, 0], frames[-96:] if covered > plain else out[plain - 1, 0])


def test_a_1_6_s_clip_gives_two_examples_covering_all_of_it():
    mel = log_mel(torch.zeros(25600))
    assert examples(mel).shape[0] == 1 and examples(mel, cover_tail=True).shape[0] == 2


def test_forward_shape(source, batch):
    with torch.no_grad():
        assert source(batch[:1]).shape == (1, 128)


@pytest.mark.parametrize(
    "call, shape, match",
    [
        (log_mel, (399,), "L >= 400"),
        (log_mel, (2, 399), "L >= 400"),
        (examples, (95, 64), "F >= 96"),
        (examples, (2, 96, 64), "[F, 64]"),
        (examples, (96, 128), "[F, 64]"),
        ("vggish", (2, 96, 64), "[n, 1, 96, 64]"),
        ("vggish", (2, 1, 95, 64), "[n, 1, 96, 64]"),
        ("vggish", (2, 1, 64, 96), "[n, 1, 96, 64]"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),  # stable ids: xdist workers must agree
)
def test_misshaped_inputs_name_the_expected_shape(source, call, shape, match):
    fn = source if call == "vggish" else call
    with pytest.raises(ValueError, match=re.escape(match)):
        fn(torch.zeros(shape))


def test_log_mel_wants_a_float_wave():
    with pytest.raises(ValueError, match="float wave"):
        log_mel(torch.zeros(1000, dtype=torch.int16))
