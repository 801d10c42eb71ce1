"""What a run shows while it trains: the numbers of each log line and, with `tensorboard`, the
same numbers as TensorBoard scalars in the run folder.

A log line holds the loss and its parts (per modality), the target error by timestep quartile,
the learning rate, the gradient norm, samples/s, the share of the window's time spent waiting for
data, and the peak GPU memory of the window. The window's sums stay on the device, so watching
adds no synchronisation to a step.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

QUARTILES = 4
TENSORBOARD_DIR = "tensorboard"

# log.jsonl key -> TensorBoard tag; keys not named here go under "train/".
TAGS = {
    "loss": "loss/total",
    "video": "loss/video",
    "audio": "loss/audio",
    "mse": "loss/mse",
    "vb": "loss/vb",
    **{f"loss_t{q}": f"loss_by_timestep/quartile_{q + 1}" for q in range(QUARTILES)},
    "lr": "optim/lr",
    "grad_norm": "optim/grad_norm",
    "samples_per_s": "speed/samples_per_s",
    "data_wait": "speed/data_wait_share",
    "peak_gpu_gib": "memory/peak_gpu_gib",
}


class MissingExtra(ValueError, ImportError):
    """An optional package a chosen option needs is not installed (a ValueError, so that the CLI
    reports it in one line before any work)."""


class Window:
    """The numbers of one log window: samples, time waiting for data, and the per-sample target
    error [B] summed by quartile of the timesteps [B] (integers in [0, num_timesteps)). Time spent
    writing checkpoints and previews is `exclude`d, so that samples/s is the training speed."""

    def __init__(self, device: torch.device, num_timesteps: int):
        self.device, self.num_timesteps = device, num_timesteps
        self.reset()

    def reset(self) -> None:
        self.start, self.items, self.waited, self.excluded = time.monotonic(), 0, 0.0, 0.0
        self.sums = torch.zeros(QUARTILES, device=self.device)
        self.counts = torch.zeros(QUARTILES, device=self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def add(
        self,
        items: int,
        waited: float,
        timesteps: Tensor | None = None,
        sample_error: Tensor | None = None,
    ) -> None:
        """One step: `items` samples over all processes, `waited` seconds for the batch."""
        self.items += items
        self.waited += waited
        if timesteps is not None and sample_error is not None:
            q = (timesteps.long() * QUARTILES // self.num_timesteps).clamp(0, QUARTILES - 1)
            self.sums.index_add_(0, q, sample_error.detach().float())
            self.counts.index_add_(0, q, torch.ones_like(q, dtype=torch.float32))

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (a checkpoint or preview write) out of the window's time."""
        self.excluded += seconds

    def close(self) -> dict[str, float]:
        """The window's record (samples_per_s, data_wait, loss_t0..3 where a quartile was drawn,
        peak_gpu_gib on CUDA); starts the next window."""
        elapsed = max(time.monotonic() - self.start - self.excluded, 1e-9)
        record = {"samples_per_s": self.items / elapsed, "data_wait": self.waited / elapsed}
        for q, (total, n) in enumerate(zip(self.sums.tolist(), self.counts.tolist())):
            if n:
                record[f"loss_t{q}"] = total / n
        if self.device.type == "cuda":
            record["peak_gpu_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.reset()
        return record


def require_tensorboard() -> None:
    """A MissingExtra naming the install command when TensorBoard is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as err:
        raise MissingExtra(
            "--tensorboard needs the tensorboard package: pip install 'mmfast[tensorboard]' "
            f"(or pip install tensorboard); {err}"
        ) from err


class TensorBoardLog:
    """Scalars of each log record under `run_dir`/tensorboard. A resumed run drops the events a
    stopped run wrote after its checkpoint (`purge_step`), so curves never double back."""

    def __init__(self, run_dir: Path, step: int):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=step if step else None
        )

    def write(self, record: dict[str, float]) -> None:
        step = int(record["step"])
        for key, value in record.items():
            if key != "step":
                self.writer.add_scalar(TAGS.get(key, f"train/{key}"), value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
