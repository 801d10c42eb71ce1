"""Training configuration, with named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from mmfast.choice import choice
from mmfast.data.resize import Resize
from mmfast.diffusion import Prediction, Weighting
from mmfast.models.config import CoupledUNetConfig, get_config
from mmfast.models.sr_config import SR_PRESETS, SuperResConfig, get_sr_config
from mmfast.precision import Precision
from mmfast.train.option import (
    EMA_RATE,
    NONNEGATIVE,
    NONNEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    option,
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides its output directory.

    data: a folder of videos with sound or a clip store (`mmfast.data.prepare`), or None for the
    built-in synthetic dataset. batch_size is per process (the global batch is batch_size x world
    size). max_minutes bounds the wall time (the run stops at the first step boundary after it and
    writes a checkpoint).

    A field written with `option(default, help, ...)` is also an option of `mmfast train` (and of
    `mmfast train-sr` unless its `stages` leave "sr" out); its flag is --field-name unless named.
    Choices are enums and take their string values too (from the CLI, JSON or a caller).
    """

    model: str = "mmdiffusion-64"
    model_overrides: tuple[tuple[str, object], ...] = ()
    data: str | None = option(
        None,
        "folder of .mp4/.mkv/.webm/.avi files, or a clip store made by `mmfast prepare`; omit for "
        "synthetic data",
    )
    fps: float = 10.0
    hflip_p: float = option(
        0.0, "horizontal flip probability (folder data)", flag="--hflip", bound=PROBABILITY
    )
    resize: Resize = option(Resize.LETTERBOX, "how frames are fitted to the model size")
    synthetic_clips: int = 100_000
    steps: int = option(100_000, "total steps of the run", bound=POSITIVE_INT)
    batch_size: int = option(4, "clips per process and step", bound=POSITIVE_INT)
    lr: float = option(1e-4, "AdamW learning rate", bound=POSITIVE)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    ema_rate: float = option(
        0.9999, "EMA rate (default 0.9999 for the release preset)", flag="--ema", bound=EMA_RATE
    )
    ema_warmup: bool = False  # min(rate, (1 + n) / (10 + n)): for short runs
    grad_clip: float | None = option(
        1.0, "gradient norm clip (0 disables)", bound=NONNEGATIVE, zero_is_none=True
    )
    precision: Precision = option(Precision.FP32, "fp16 = autocast + GradScaler (the V100 recipe)")
    compile: bool = option(False, "torch.compile the model")
    activation_checkpointing: bool = option(False, "recompute activations in backward")
    loss_weights: tuple[float, float] = (1.0, 1.0)
    prediction: Prediction = option(
        Prediction.EPS,
        "what the model predicts: eps (the release; its checkpoints need it), v or x0",
        stages=("base",),
    )
    loss_weighting: Weighting = option(
        Weighting.UNIFORM,
        "timestep weights: uniform (the release) or min(SNR, gamma) (Hang et al. 2023)",
        stages=("base",),
    )
    min_snr_gamma: float = option(5.0, "gamma of min-snr", bound=POSITIVE, stages=("base",))
    warmup_steps: int = option(
        0, "linear learning-rate warmup over this many steps", bound=NONNEGATIVE_INT
    )
    seed: int = option(0, "the run's random seed", bound=NONNEGATIVE_INT)
    log_every: int = option(10, "steps between log lines", bound=POSITIVE_INT)
    checkpoint_every: int = option(1000, "steps between checkpoints", bound=POSITIVE_INT)
    tensorboard: bool = option(
        False,
        "TensorBoard events in RUN/tensorboard: loss per modality and by timestep quartile, lr, "
        "grad norm, samples/s, data-wait share, peak GPU memory (pip install 'mmfast[tensorboard]')",
    )
    sample_every: int = option(
        0,
        "every N steps, preview clips (mp4 + png) of the EMA model from a fixed seed in "
        "RUN/previews (0: none)",
        bound=NONNEGATIVE_INT,
        stages=("base",),
    )
    max_minutes: float | None = option(
        None, "stop (with a checkpoint) after this wall time", flag="--minutes", bound=POSITIVE
    )
    num_workers: int | None = option(
        None,
        "data loader processes (default: 0 for synthetic data, 4 for a folder or a clip store)",
        flag="--workers",
        bound=NONNEGATIVE_INT,
    )

    def __post_init__(self) -> None:
        for name, kind in (
            ("precision", Precision),
            ("resize", Resize),
            ("prediction", Prediction),
            ("loss_weighting", Weighting),
        ):
            object.__setattr__(self, name, choice(kind, getattr(self, name), name))
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_rate < 1.0:
            raise ValueError(f"ema_rate must be in [0, 1), got {self.ema_rate}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if "prediction" in dict(self.model_overrides):
            raise ValueError("set the prediction target with `prediction`, not a model override")
        if self.min_snr_gamma <= 0:
            raise ValueError(f"min_snr_gamma must be positive, got {self.min_snr_gamma}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.sample_every < 0:
            raise ValueError(f"sample_every must be >= 0, got {self.sample_every}")
        if self.stage == "sr" and self.sample_every:
            raise ValueError("sample_every previews the coupled model; the SR stage has none")
        if self.stage == "sr" and (self.prediction, self.loss_weighting) != ("eps", "uniform"):
            raise ValueError(
                "the SR stage trains the release's learned-variance eps model with the hybrid "
                "loss: prediction must be 'eps' and loss_weighting 'uniform'"
            )

    @property
    def stage(self) -> str:
        """ "base" (the coupled U-Net) or "sr" (the super-resolution U-Net), by the model preset."""
        return "sr" if self.model in SR_PRESETS else "base"

    def model_config(self) -> CoupledUNetConfig | SuperResConfig:
        overrides = dict(self.model_overrides)
        if self.stage == "sr":
            return get_sr_config(self.model, **overrides)
        return get_config(self.model, **{"prediction": self.prediction.value, **overrides})

    def learning_rate(self, step: int) -> float:
        """The rate of step `step` (0-based): linear warmup over `warmup_steps`, then `lr`."""
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return self.lr

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        d = json.loads(text)
        d["model_overrides"] = tuple(tuple(kv) for kv in d.get("model_overrides", ()))
        d["betas"] = tuple(d["betas"])
        d["loss_weights"] = tuple(d["loss_weights"])
        return cls(**d)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The release's recipe (paper Table A.1): dropout 0.1, lr 1e-4, no weight decay, EMA 0.9999,
    # 100k steps at a global batch of 128 (32 processes x 4).
    "mmdiffusion-64": TrainConfig(model="mmdiffusion-64", model_overrides=(("dropout", 0.1),)),
    # The tiny model for CPUs: a higher learning rate and a warmed-up EMA suit short runs.
    "tiny": TrainConfig(
        model="tiny", steps=20_000, lr=5e-4, ema_rate=0.999, ema_warmup=True, checkpoint_every=200
    ),
    # The demo model on a CPU: the options that learned fastest in the measured learning curves.
    "demo": TrainConfig(
        model="demo",
        steps=1_000_000,
        batch_size=8,
        lr=1e-3,
        warmup_steps=100,
        ema_rate=0.995,
        ema_warmup=True,
        prediction="v",
        loss_weighting="min-snr",
        log_every=10,
        checkpoint_every=500,
    ),
    # The release's SR recipe: lr 1e-4, EMA 0.9999, no flip, uniform timesteps; it ran fp16 at a
    # global batch of 48 (8 processes x 6).
    "sr-256": TrainConfig(model="sr-256", batch_size=6),
    # The tiny SR model for CPUs (32 -> 128 frames of the synthetic clips).
    "tiny-sr": TrainConfig(
        model="tiny-sr",
        steps=20_000,
        lr=5e-4,
        ema_rate=0.999,
        ema_warmup=True,
        checkpoint_every=200,
    ),
}
SR_TRAIN_PRESETS = tuple(name for name, c in TRAIN_PRESETS.items() if c.stage == "sr")


def get_train_config(name: str, **overrides) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise ValueError(
            f"unknown training preset {name!r}; expected one of {sorted(TRAIN_PRESETS)}"
        )
    return TRAIN_PRESETS[name].replace(**overrides)
