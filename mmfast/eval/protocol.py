"""How clips become FVD / KVD / FAD numbers: mmfast's protocol and the release's, side by side."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    """Every choice between two folders of clips and three numbers.

    Clips are `frames` frames at `fps` with their sound. `stride` frames between window starts
    (`frames`: non-overlapping). Frames are letterboxed to `size` (None: the generated clips'
    own size) with FFmpeg's `interpolation`, then go to I3D at 224x224; `truncate_uint8` reproduces
    the release's float -> uint8 truncation first; I3D's BatchNorm eps is `i3d_bn_eps` (the TF
    network's 1e-3, or the 1e-5 of MM-Diffusion's port). Audio: `audio_rate` Hz, `audio_channel`
    ("mean" or a channel index), through `audio_extractor` ("vggish" or "audioclip"), in
    `audio_scale` (1: [-1, 1]), `audioclip_batch_stats` (BatchNorm in training mode, batches of
    `audio_batch`), FAD times `fad_scale`. `selection` "seeded" or "unseeded" (the release's
    shuffle); `repeat_short` repeats a side that has fewer clips than asked instead of failing.
    `distances` "float64" or "release" (float32 torch, SVD square roots); `kvd_subsets` None for
    one pass over all pairs, else the number of seeded subsets of `kvd_subset_size` rows.
    """

    name: str
    frames: int = 16
    fps: float = 10.0
    stride: int = 16
    size: int | None = None
    interpolation: str = "area"
    truncate_uint8: bool = False
    i3d_bn_eps: float = 1e-3
    audio_rate: int = 16000
    audio_channel: str | int = "mean"
    audio_extractor: str = "vggish"
    audio_scale: float = 1.0
    audioclip_batch_stats: bool = False
    audio_batch: int = 8
    fad_scale: float = 1.0
    selection: str = "seeded"
    repeat_short: bool = False
    distances: str = "float64"
    kvd_subsets: int | None = 100
    kvd_subset_size: int = 1000
    cache_reference: bool = True

    @property
    def audio_length(self) -> int:
        return round(self.frames / self.fps * self.audio_rate)


PROTOCOLS: dict[str, Protocol] = {
    "default": Protocol("default"),
    "mmdiffusion": Protocol(
        "mmdiffusion",
        stride=1,
        size=64,
        interpolation="bicubic",
        truncate_uint8=True,
        i3d_bn_eps=1e-5,
        audio_rate=44100,
        audio_channel=0,
        audio_extractor="audioclip",
        audioclip_batch_stats=True,
        fad_scale=10_000.0,
        selection="unseeded",
        repeat_short=True,
        distances="release",
        kvd_subsets=None,
        cache_reference=False,  # an unseeded pick is a new pick every run
    ),
}

# What --protocol mmdiffusion reproduces that the default protocol does not (for --help and the
# README): the release's evaluation (py_scripts/eval.py -> mm_diffusion/evaluator.py).
RELEASE_FLAWS: tuple[str, ...] = (
    "the reference is whatever folder is given (the release used the TRAINING split)",
    "clips are every 16-frame window at stride 1, so neighbouring clips share 15 frames",
    "the clips are picked by an unseeded shuffle: every run picks others",
    "a side with fewer clips than --num is repeated silently",
    "every frame is letterboxed to 64x64 (bicubic), super-resolved clips included, and truncated "
    "to uint8",
    "I3D's BatchNorm eps is 1e-5 where the TF network it was converted from used 1e-3",
    "FAD uses AudioCLIP's audio head fed [-1, 1] floats where it expects int16 amplitudes, with "
    "BatchNorm in training mode (batch statistics of each batch of 8)",
    "audio is channel 0 at 44.1 kHz for both sides, generated 16 kHz audio included",
    "FAD is multiplied by 10,000; FVD and FAD are float32 with SVD square roots",
    "KVD is one pass over all pairs, with no spread",
)
