"""Training configuration, with named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from mmfast.diffusion import PREDICTIONS, WEIGHTINGS
from mmfast.models.config import CoupledUNetConfig, get_config
from mmfast.models.sr_config import SR_PRESETS, SuperResConfig, get_sr_config

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides its output directory.

    data: a folder of videos with sound, or None for the built-in synthetic dataset. batch_size is
    per process (the global batch is batch_size x world size). max_minutes bounds the wall time
    (the run stops at the first step boundary after it and writes a checkpoint).
    """

    model: str = "mmdiffusion-64"
    model_overrides: tuple[tuple[str, object], ...] = ()
    data: str | None = None
    fps: float = 10.0
    hflip_p: float = 0.0
    resize: str = "letterbox"
    synthetic_clips: int = 100_000
    steps: int = 100_000
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    ema_rate: float = 0.9999
    ema_warmup: bool = False  # min(rate, (1 + n) / (10 + n)): for short runs
    grad_clip: float | None = 1.0
    precision: str = "fp32"
    compile: bool = False
    activation_checkpointing: bool = False
    loss_weights: tuple[float, float] = (1.0, 1.0)
    # What the model learns to predict (eps: the release, needed by its checkpoints; v; x0) and
    # how timesteps are weighted (uniform: the release; min-snr: min(SNR, gamma), Hang et al.).
    prediction: str = "eps"
    loss_weighting: str = "uniform"
    min_snr_gamma: float = 5.0
    warmup_steps: int = 0  # linear learning-rate warmup from lr / warmup_steps
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 1000
    max_minutes: float | None = None
    num_workers: int | None = None  # None: 0 for synthetic data, up to 4 for a folder

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_rate < 1.0:
            raise ValueError(f"ema_rate must be in [0, 1), got {self.ema_rate}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.resize not in ("letterbox", "center-crop"):
            raise ValueError(f"resize must be 'letterbox' or 'center-crop', got {self.resize!r}")
        if "prediction" in dict(self.model_overrides):
            raise ValueError("set the prediction target with `prediction`, not a model override")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.loss_weighting not in WEIGHTINGS:
            raise ValueError(
                f"loss_weighting must be one of {WEIGHTINGS}, got {self.loss_weighting!r}"
            )
        if self.min_snr_gamma <= 0:
            raise ValueError(f"min_snr_gamma must be positive, got {self.min_snr_gamma}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
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
        return get_config(self.model, **{"prediction": self.prediction, **overrides})

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
