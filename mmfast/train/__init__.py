"""Training the coupled U-Net: configs, the loop, checkpoints, data stream, DDP."""

from mmfast.train.config import TRAIN_PRESETS, TrainConfig, get_train_config
from mmfast.train.trainer import TrainResult, train

__all__ = [
    "TRAIN_PRESETS",
    "TrainConfig",
    "TrainResult",
    "get_train_config",
    "train",
]
