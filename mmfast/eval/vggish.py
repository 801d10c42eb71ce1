"""VGGish (Hershey et al. 2017), the audio network of FAD: 0.96 s of log-mel frames -> 128-d
embedding.

    wave [..., L] at 16 kHz  --log_mel-->   frames [..., 1 + (L - 400) // 160, 64]
    frames [F, 64]           --examples-->  [F // 96, 1, 96, 64]
    examples                 --VGGish-->    [n, 128], after the last ReLU
    embeddings               --VGGishPCA--> [n, 128] in 0..255 (optional, AudioSet's release)

The network has torchaudio's prototype names (`features_network.*`, `embedding_network.*`), so
torchaudio's `vggish.pt` loads as it is; torchvggish's `vggish-10086976.pth` (`features.*`,
`embeddings.*`) loads through a prefix rename. The front end is AudioSet's mel_features.py: 25 ms
periodic-Hann frames every 10 ms, |FFT| of 512 points, 64 bands of 125-7500 Hz, log(mel + 0.01).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor, nn

from mmfast.eval.weights import WeightFileError, load_strict, require_file
from mmfast.state_dict import read_state_dict

VGGISH_FILE = "vggish.pt"
VGGISH_SOURCE = (
    "torchaudio's VGGish bundle, download.pytorch.org/torchaudio/models/vggish.pt, or "
    "torchvggish's release, github.com/harritaylor/torchvggish/releases/download/v0.1/"
    "vggish-10086976.pth"
)
VGGISH_PCA_FILE = "vggish_pca_params-970ea276.pth"
VGGISH_PCA_SOURCE = f"github.com/harritaylor/torchvggish/releases/download/v0.1/{VGGISH_PCA_FILE}"

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512  # the power of 2 above WINDOW
MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s; examples do not overlap
EMBEDDING = 128

# torchvggish's prefixes -> torchaudio's; layer indices, shapes and order are the same.
TORCHVGGISH_PREFIXES = {"features.": "features_network.", "embeddings.": "embedding_network."}


def _hz_to_mel(hz: Tensor) -> Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)  # HTK


def mel_matrix() -> Tensor:
    """[257, 64] float64: the weight of each FFT bin in each mel band, as AudioSet builds it.

    Each band is a triangle over 3 consecutive of 66 edges evenly spaced in mel, evaluated at the
    bins' centre frequencies in mel: linear in mel, where torchaudio's `melscale_fbanks` (same
    edges) is linear in Hz, which moves the weights by up to 4.4e-3. The DC bin weighs nothing."""
    bins = _hz_to_mel(torch.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1, dtype=torch.float64))
    low, high = _hz_to_mel(torch.tensor([MEL_LOW_HZ, MEL_HIGH_HZ], dtype=torch.float64))
    edges = torch.linspace(low, high, MEL_BANDS + 2, dtype=torch.float64)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    weights = torch.minimum(rising, falling).clamp(min=0.0)
    weights[0] = 0.0
    return weights


def log_mel(wave: Tensor) -> Tensor:
    """wave [..., L] float at 16 kHz, nominally in [-1, 1] -> log-mel frames
    [..., 1 + (L - 400) // 160, 64], float32 (float64 for float64 input).

    Frame t covers samples [160 t, 160 t + 400): no centre padding, a partial last frame dropped.

        mel = log_mel(audio)  # [25600] (1.6 s) -> [158, 64]
    """
    if not wave.is_floating_point() or wave.ndim == 0 or wave.shape[-1] < WINDOW:
        raise ValueError(
            f"log_mel expects a float wave [..., L] at 16 kHz with L >= {WINDOW} (25 ms); got "
            f"{list(wave.shape)} {str(wave.dtype).removeprefix('torch.')}"
        )
    dtype = torch.float64 if wave.dtype == torch.float64 else torch.float32
    wave = wave.to(dtype)
    window = torch.hann_window(WINDOW, periodic=True, dtype=dtype, device=wave.device)
    # torch.stft centres the 400-sample window in each 512-point frame, at offset 56; padding
    # the wave by 56 puts samples [160 t, 160 t + 400) under it and yields 1 + (L - 400) // 160
    # frames. AudioSet's rfft(frame, 512) has them at offset 0: a circular shift, same |FFT|.
    spec = AF.spectrogram(
        wave,
        pad=(FFT - WINDOW) // 2,
        window=window,
        n_fft=FFT,
        hop_length=HOP,
        win_length=WINDOW,
        power=1.0,
        normalized=False,
        center=False,
    )  # [..., 257, frames]
    mel = spec.transpose(-1, -2) @ mel_matrix().to(wave.device, dtype)
    return torch.log(mel + LOG_OFFSET)


def examples(frames: Tensor, *, cover_tail: bool = False) -> Tensor:
    """log-mel frames [F >= 96, 64] -> VGGish's input [n, 1, 96, 64]: F // 96 consecutive
    examples, a trailing partial one dropped (VGGish's rule). With `cover_tail`, a dropped tail
    adds one example of the last 96 frames, so all of the clip is heard (1.6 s = 158 frames: 2
    examples instead of 1)."""
    if frames.ndim != 2 or frames.shape[1] != MEL_BANDS or frames.shape[0] < EXAMPLE_FRAMES:
        raise ValueError(
            f"examples expects log-mel frames [F, {MEL_BANDS}] with F >= {EXAMPLE_FRAMES} "
            f"(0.96 s); got {list(frames.shape)}"
        )
    count = frames.shape[0] // EXAMPLE_FRAMES
    out = frames[: count * EXAMPLE_FRAMES].reshape(count, EXAMPLE_FRAMES, MEL_BANDS)
    if cover_tail and frames.shape[0] % EXAMPLE_FRAMES:
        out = torch.cat([out, frames[None, -EXAMPLE_FRAMES:]])
    return out[:, None]


class VGGishPCA(nn.Module):
    """AudioSet's postprocessing of VGGish embeddings (torchvggish's `Postprocessor`): PCA with
    whitening, clipped to [-2, 2] and quantised to the integers 0..255, kept as floats."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("eigen_vectors", torch.zeros(EMBEDDING, EMBEDDING))
        self.register_buffer("means", torch.zeros(EMBEDDING))

    def forward(self, embeddings: Tensor) -> Tensor:
        """embeddings [n, 128] -> [n, 128]."""
        if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING:
            raise ValueError(
                f"VGGishPCA expects embeddings [n, {EMBEDDING}], got {list(embeddings.shape)}"
            )
        whitened = (embeddings - self.means) @ self.eigen_vectors.T
        return torch.round((whitened.clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0))


class VGGish(nn.Module):
    """log-mel examples [n, 1, 96, 64] -> embeddings [n, 128]: four 3x3 conv stages (64, 128,
    2 x 256, 2 x 512 channels, each ending in a 2x2 max pool) and three linear layers, each
    followed by a ReLU; then `pca` if set (load_vggish's `pca_path`)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for stage in ((64,), (128,), (256, 256), (512, 512)):
            for width in stage:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features_network = nn.Sequential(*layers)
        self.embedding_network = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, EMBEDDING),
            nn.ReLU(),
        )
        self.pca: VGGishPCA | None = None

    def forward(self, examples: Tensor) -> Tensor:
        """examples [n, 1, 96, 64] -> [n, 128]."""
        if examples.ndim != 4 or tuple(examples.shape[1:]) != (1, EXAMPLE_FRAMES, MEL_BANDS):
            raise ValueError(
                f"VGGish expects log-mel examples [n, 1, {EXAMPLE_FRAMES}, {MEL_BANDS}], got "
                f"{list(examples.shape)}"
            )
        x = self.features_network(examples)  # [n, 512, 6, 4]
        # Flattened channels-last, as the TensorFlow original the weights come from.
        x = self.embedding_network(x.permute(0, 2, 3, 1).flatten(1))
        return x if self.pca is None else self.pca(x)


def load_vggish(path: str | Path | None, pca_path: str | Path | None = None) -> VGGish:
    """VGGish from torchaudio's `vggish.pt` or torchvggish's `vggish-10086976.pth` (told apart by
    their keys), every key there with its shape and dtype; in eval mode on the CPU. With
    `pca_path` (torchvggish's PCA file, see load_vggish_pca) the model also postprocesses.

        vggish = load_vggish("vggish.pt")
        emb = vggish(examples(log_mel(wave)))  # wave [L] at 16 kHz -> [n, 128]
    """
    path = require_file(
        path, what=f"VGGish ({VGGISH_FILE})", option="--vggish", source=VGGISH_SOURCE
    )
    what = "VGGish (torchaudio's vggish.pt or torchvggish's vggish-10086976.pth)"
    state = read_state_dict(path, what=what, error=WeightFileError)
    if any(k.startswith(tuple(TORCHVGGISH_PREFIXES)) for k in state) and not any(
        k.startswith(tuple(TORCHVGGISH_PREFIXES.values())) for k in state
    ):
        state = {_torchaudio_key(k): v for k, v in state.items()}
        what += ", torchvggish's keys renamed to torchaudio's"
    model = VGGish()
    load_strict(model, state, path=path, what=what)
    if pca_path is not None:
        model.pca = load_vggish_pca(pca_path)
    return model.eval()


def _torchaudio_key(key: str) -> str:
    for old, new in TORCHVGGISH_PREFIXES.items():
        if key.startswith(old):
            return new + key.removeprefix(old)
    return key


def _numpy_array_globals() -> list[object]:
    """What unpickling a float64 or float32 ndarray needs: its reconstructor (under numpy 2's
    name and numpy 1's, which the 2019 file was presumably written with), ndarray, dtype and the
    dtypes' classes (the unpickler sets their state)."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    return [
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.float64)),
        type(np.dtype(np.float32)),
    ]


def load_vggish_pca(path: str | Path | None) -> VGGishPCA:
    """torchvggish's PCA file (`pca_eigen_vectors` [128, 128] and `pca_means` [128] or [128, 1],
    numpy arrays or tensors; cast to float32), read without running pickled code: besides
    tensors, only what float ndarrays are made of may be unpickled."""
    what = f"VGGish's PCA parameters ({VGGISH_PCA_FILE})"
    path = require_file(path, what=what, option="load_vggish_pca(path)", source=VGGISH_PCA_SOURCE)
    state = read_state_dict(
        path, what=what, allow_globals=_numpy_array_globals(), error=WeightFileError
    )
    shapes = {
        "pca_eigen_vectors": [[EMBEDDING, EMBEDDING]],
        "pca_means": [[EMBEDDING], [EMBEDDING, 1]],
    }
    problems = [f"missing {k}" for k in shapes if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in shapes]
    values = {}
    for key in [k for k in shapes if k in state]:
        value = state[key]
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            value = torch.from_numpy(value)
        if not isinstance(value, Tensor) or not value.is_floating_point():
            problems.append(f"{key}: a {type(value).__name__}, not a float array")
        elif list(value.shape) not in shapes[key]:
            expected = " or ".join(map(str, shapes[key]))
            problems.append(f"{key}: {list(value.shape)}, expected {expected}")
        else:
            values[key] = value.to(torch.float32)
    if problems:
        raise WeightFileError(f"{path}: not {what}: " + "; ".join(problems))
    pca = VGGishPCA()
    pca.eigen_vectors.copy_(values["pca_eigen_vectors"])
    pca.means.copy_(values["pca_means"].reshape(EMBEDDING))
    return pca.eval()
