"""AudioCLIP's audio head (ESResNeXt-fbsp): the audio network of MM-Diffusion's FAD.

wave [B, C, L] at 44.1 kHz in int16 scale -> embedding [B, 1024]:
scale to [-1, 1] -> frames of 1654 every 561 samples, Blackman-Harris windowed -> learned
Fourier-like basis `LinearFBSP` (2048 points, 1025 one-sided bins) -> power of bins 0..1022 as
3 bands of 341 -> dB -> per audio channel a ResNeXt-50 32x4d with attention (att1..att5) ->
sum over channels -> fc 2048 -> 1024.

The network of AndreyGuzhov/AudioCLIP (`model/esresnet/`, built by `model/audioclip.py` as
`ESResNeXtFBSP(n_fft=2048, hop_length=561, win_length=1654, window="blackmanharris",
normalized=True, spec_height=-1, spec_width=-1, num_classes=1024, apply_attention=True)`), as
vendored by MM-Diffusion (evaluations/AudioCLIP/), with its state-dict names (without the
`audio.` prefix of the full model), so that the `audio.*` entries of AudioCLIP-Full-Training.pt
load as they are. The embedding is the un-normalised one MM-Diffusion's FAD uses.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfast.eval.weights import WeightFileError, load_strict, require_file
from mmfast.state_dict import read_state_dict

AUDIOCLIP_FILE = "AudioCLIP-Full-Training.pt"
AUDIOCLIP_SOURCE = (
    "https://github.com/AndreyGuzhov/AudioCLIP/releases/download/v0.1/AudioCLIP-Full-Training.pt"
)
PREFIX = "audio."

SAMPLE_RATE = 44100
N_FFT = 2048
WIN_LENGTH = 1654
HOP_LENGTH = 561
NUM_BINS = N_FFT // 2 + 1  # 1025 one-sided bins
NUM_BANDS = 3  # conv1's input channels
BAND_HEIGHT = NUM_BINS // NUM_BANDS  # 341; bins 1023 and 1024 are dropped
EMBED_DIM = 1024
LOG10_EPS = 1e-18  # stands in for zero power before log10
INT16_MIN, INT16_MAX = -32768.0, 32767.0

# scipy.signal.windows.blackmanharris's coefficients, for w[n] = sum_k (-1)^k a_k cos(2 pi k n / M)
BLACKMAN_HARRIS = (0.35875, 0.48829, 0.14128, 0.01168)


def blackman_harris(length: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The periodic 4-term Blackman-Harris window [length], as
    `scipy.signal.get_window("blackmanharris", length, fftbins=True)` (computed in float64)."""
    n = torch.arange(length, dtype=torch.float64)
    w = torch.zeros(length, dtype=torch.float64)
    for k, a in enumerate(BLACKMAN_HARRIS):
        w += (-1) ** k * a * torch.cos(2 * math.pi * k * n / length)
    return w.to(dtype)


def num_frames(length: int) -> int:
    """Frames of WIN_LENGTH every HOP_LENGTH samples in a signal of `length`: 1 if it is no longer
    than a frame, else 1 + ceil((length - WIN_LENGTH) / HOP_LENGTH), zero padding filling the last
    (the original's `utils.transforms.frame_signal`)."""
    if length <= WIN_LENGTH:
        return 1
    return 1 + -(-(length - WIN_LENGTH) // HOP_LENGTH)


def frame_signal(x: Tensor) -> Tensor:
    """x [..., L] -> frames [..., num_frames(L), WIN_LENGTH] (not windowed). The signal is
    zero-padded to (frames - 1) * HOP_LENGTH + WIN_LENGTH, the floor half of the padding in front,
    as the original's `frame_signal` does."""
    pad = (num_frames(x.shape[-1]) - 1) * HOP_LENGTH + WIN_LENGTH - x.shape[-1]  # >= 0
    return F.pad(x, (pad // 2, pad - pad // 2)).unfold(-1, WIN_LENGTH, HOP_LENGTH)


class LinearFBSP(nn.Module):
    """The learned Fourier-like basis of ESResNet-fbsp: real x [..., N] -> complex [..., K, 2].

    With t_n = pi * linspace(-1, 1, N)_n + 1e-8 and, per output k, learned m_k, fb_k, fc_k:
        s_kn = sinc(fb_k t_n / (m_k + 1e-8)),  sinc(0) = 1
        W_kn = sqrt(fb_k) |s_kn|^m_k exp(i (m_k pi [s_kn < 0] - fc_k t_n))   (/ sqrt(N) if normalized)
        y_k  = sum_n W_kn x_n
    i.e. the complex power s^m of the sinc window times the kernel exp(-i fc t). At the initial
    m = 0, fb = 1, fc = k this is NOT the DFT: W_kn = (-1)^k e^{-ik 1e-8} e^{-2 pi i k n / (N - 1)}
    (period N - 1, not N), so bin k sits at k / (N - 1) cycles per sample.

    The basis is built in float64 and cast to x's dtype (the original builds it in float32: at the
    initial parameters its phases differ from these by up to 4e-4 rad, in the top bins). Where s_kn is exactly 0 the original gives
    NaN (0 * log 0); this gives |0|^m. `bias` is the original's empty parameter (bias=False still
    registers one, and the weight file holds it); the original's gradient hooks and its basis-norm
    loss serve only training and are left out.
    """

    def __init__(self, out_features: int, *, normalized: bool = True) -> None:
        super().__init__()
        self.out_features, self.normalized = out_features, normalized
        self.eps = 1e-8
        self.m = nn.Parameter(torch.zeros(out_features))
        self.fb = nn.Parameter(torch.ones(out_features))
        self.fc = nn.Parameter(torch.arange(out_features, dtype=torch.float32))
        self.bias = nn.Parameter(torch.empty(0))

    def basis(self, in_features: int) -> Tensor:
        """The complex basis as [K, in_features, 2] (real, imaginary), float64."""
        t = math.pi * torch.linspace(-1, 1, in_features, dtype=torch.float64, device=self.m.device)
        t = t + self.eps  # [N]
        m, fb, fc = (p.double()[:, None] for p in (self.m, self.fb, self.fc))  # [K, 1]
        arg = fb * t / (m + self.eps)
        sinc = torch.where(arg == 0, torch.ones_like(arg), torch.sin(arg) / arg)  # [K, N]
        magnitude = fb.sqrt() * sinc.abs() ** m
        phase = m * (sinc < 0).double() * math.pi - fc * t
        if self.normalized:
            magnitude = magnitude / math.sqrt(in_features)
        return torch.stack((magnitude * torch.cos(phase), magnitude * torch.sin(phase)), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """x [..., N] real -> [..., K, 2] (real, imaginary), in x's dtype."""
        basis = self.basis(x.shape[-1]).to(x.dtype)  # [K, N, 2]
        out = x @ basis.permute(1, 0, 2).reshape(x.shape[-1], 2 * self.out_features)
        return out.unflatten(-1, (self.out_features, 2))

    def extra_repr(self) -> str:
        return f"out_features={self.out_features}, normalized={self.normalized}"


class Attention2d(nn.Module):
    """x [B, C_in, H, W] -> gate in (0, 1) [B, C_out, *size]: adaptive max pool to `size`,
    depthwise conv (with bias), 1x1 conv, BatchNorm, sigmoid."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        padding: tuple[int, int],
    ) -> None:
        super().__init__()
        self.conv_depth = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=padding, groups=in_channels
        )
        self.conv_point = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = F.adaptive_max_pool2d(x, size)
        return torch.sigmoid(self.bn(self.conv_point(self.conv_depth(x))))


class Bottleneck(nn.Module):
    """torchvision's ResNeXt bottleneck: [B, C_in, H, W] -> [B, 4 * planes, H / stride, W / stride],
    1x1 -> grouped 3x3 (with the stride) -> 1x1, each BatchNorm'd, plus the (downsampled) input."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, *, groups: int = 32, width: int = 4
    ) -> None:
        super().__init__()
        hidden = planes * width // 64 * groups
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def _layer(in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, planes, stride)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ESResNeXtFBSP(nn.Module):
    """AudioCLIP's audio head: wave [B, C, L] -> embedding [B, EMBED_DIM].

    `wave` is audio at 44.1 kHz in int16 scale (-32768..32767; any real dtype, cast to the
    head's), as the head was trained; it is mapped affinely to [-1, 1] first. MM-Diffusion's
    release feeds floats in [-1, 1] without scaling them up (its FAD features come from
    amplitudes ~3e-5 after the map): to reproduce its numbers pass [-1, 1] floats as they are, to
    use the head as trained multiply them by 32768. Each audio channel runs through the trunk on
    its own; the pooled features [B, C, 2048] are summed over channels before fc.

    The channels of a batch go through the trunk together, which is the original only in eval mode
    (in training mode BatchNorm's statistics would span B * C images instead of B).

        head = load_audioclip_audio("AudioCLIP-Full-Training.pt")
        embedding = head(wave)  # wave [B, 1, 70560] (1.6 s) -> [B, 1024]
    """

    def __init__(self) -> None:
        super().__init__()
        # PyTorch's default initialisation but for fbsp's: the head is loaded, not trained here.
        self.register_buffer("window", blackman_harris(WIN_LENGTH))
        self.conv1 = nn.Conv2d(NUM_BANDS, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        # Each attention block gates a layer's output from that layer's input, max-pooled to size.
        self.layer1 = _layer(64, 64, 3, stride=1)
        self.att1 = Attention2d(64, 256, (3, 1), (1, 0))
        self.layer2 = _layer(256, 128, 4, stride=2)
        self.att2 = Attention2d(256, 512, (1, 5), (0, 2))
        self.layer3 = _layer(512, 256, 6, stride=2)
        self.att3 = Attention2d(512, 1024, (3, 1), (1, 0))
        self.layer4 = _layer(1024, 512, 3, stride=2)
        self.att4 = Attention2d(1024, 2048, (1, 5), (0, 2))
        self.att5 = Attention2d(2048, 2048, (3, 5), (1, 2))
        self.fc = nn.Linear(2048, EMBED_DIM)
        self.fbsp = LinearFBSP(NUM_BINS, normalized=True)

    def _check(self, wave: Tensor) -> Tensor:
        dtype = self.fc.weight.dtype
        if (
            not isinstance(wave, Tensor)
            or wave.ndim != 3
            or 0 in wave.shape
            or wave.is_complex()
            or wave.dtype == torch.bool
        ):
            got = (
                f"{list(wave.shape)} {str(wave.dtype).removeprefix('torch.')}"
                if isinstance(wave, Tensor)
                else type(wave).__name__
            )
            raise ValueError(
                f"AudioCLIP's audio head expects wave [B, C, L] (real, {SAMPLE_RATE} Hz, int16 "
                f"scale), got {got}"
            )
        return wave.to(dtype)

    def spectrogram(self, wave: Tensor) -> Tensor:
        """wave [B, C, L] -> power in dB [B, C, NUM_BANDS, BAND_HEIGHT, num_frames(L)]: band j
        holds bins 341 j .. 341 j + 340 of the 2048-point basis."""
        x = self._check(wave)
        batch, channels, _ = x.shape
        x = (x - INT16_MIN) * 2.0 / (INT16_MAX - INT16_MIN) - 1.0
        # Each frame is zero-padded to N_FFT in the middle; the zeros add nothing, so the basis
        # keeps only the frame's columns, with the window folded in.
        pad_left = (N_FFT - WIN_LENGTH) // 2
        basis = self.fbsp.basis(N_FFT)[:, pad_left : pad_left + WIN_LENGTH]  # [K, WIN, 2]
        basis = basis * self.window.double()[:, None]
        basis = basis.permute(1, 0, 2).reshape(WIN_LENGTH, 2 * NUM_BINS).to(x.dtype)
        spec = (frame_signal(x) @ basis).unflatten(-1, (NUM_BINS, 2))  # [B, C, T, K, 2]
        power = spec.square().sum(-1).transpose(-1, -2)[..., : NUM_BANDS * BAND_HEIGHT, :]
        power = torch.where(power > 0, power, torch.full_like(power, LOG10_EPS))
        return 10.0 * torch.log10(power).reshape(batch, channels, NUM_BANDS, BAND_HEIGHT, -1)

    def channel_features(self, wave: Tensor) -> Tensor:
        """wave [B, C, L] -> the trunk's attention-pooled features of each channel [B, C, 2048]."""
        spec = self.spectrogram(wave)
        batch, channels = spec.shape[:2]
        x = spec.flatten(0, 1)  # [B * C, 3, 341, T]
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, padding=1)
        for layer, att in (
            (self.layer1, self.att1),
            (self.layer2, self.att2),
            (self.layer3, self.att3),
            (self.layer4, self.att4),
        ):
            y = layer(x)
            x = y * att(x, y.shape[-2:])
        x = x.mean((-2, -1), keepdim=True) * self.att5(x, (1, 1))  # [B * C, 2048, 1, 1]
        return x.reshape(batch, channels, -1)

    def forward(self, wave: Tensor) -> Tensor:
        """wave [B, C, L] (44.1 kHz, int16 scale) -> embedding [B, EMBED_DIM], not normalised."""
        return self.fc(self.channel_features(wave).sum(dim=1))


def load_audioclip_audio(path: str | Path | None) -> ESResNeXtFBSP:
    """AudioCLIP's audio head from `path`, in eval mode, on the CPU.

    `path` holds the full AudioCLIP state dict (AudioCLIP-Full-Training.pt: the `audio.*` entries
    are taken, the image and text ones ignored) or only its `audio.*` entries. All 370 audio keys
    must be there with their shapes and dtypes, except the BatchNorm counters
    `*.num_batches_tracked`, which forward never reads. A missing file, one without `audio.` keys
    or one that does not fit is a WeightFileError naming `--audioclip` or the key.

        head = load_audioclip_audio("AudioCLIP-Full-Training.pt")
        embedding = head(wave)  # wave [B, C, L] at 44.1 kHz -> [B, 1024]
    """
    what = f"AudioCLIP's audio head ({AUDIOCLIP_FILE})"
    path = require_file(path, what=what, option="--audioclip", source=AUDIOCLIP_SOURCE)
    state = read_state_dict(path, what=what, error=WeightFileError)
    audio = {k: v for k, v in state.items() if k.startswith(PREFIX)}
    if not audio:
        shown = ", ".join(list(state)[:3]) or "nothing"
        raise WeightFileError(
            f"{path}: not an AudioCLIP checkpoint: no '{PREFIX}*' keys (found {shown}); "
            f"expected {AUDIOCLIP_FILE} (from {AUDIOCLIP_SOURCE}), given with --audioclip"
        )
    model = ESResNeXtFBSP()
    # Checked under the file's own names, so that an error names the key as the file spells it.
    holder = nn.ModuleDict({PREFIX.rstrip("."): model})
    counters = [k for k in holder.state_dict() if k.endswith(".num_batches_tracked")]
    load_strict(holder, audio, path=path, what=what, optional=counters)
    return model.eval()
