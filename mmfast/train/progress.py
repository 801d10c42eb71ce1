"""The training progress bar: steps done, time elapsed and time left, for runs bounded by a step
count, by wall time (`--minutes`), or both (whichever ends the run first fills the bar)."""

from __future__ import annotations

import time

from tqdm.auto import tqdm

_PERMILLE = 1000


class TrainProgress:
    """A tqdm bar over the fraction of the run done.

    end_step: the step the run stops at; max_seconds: its wall-time bound (None: unbounded);
    started: `time.monotonic()` when the run began (setup counts against a time bound).
    """

    def __init__(self, step: int, end_step: int, max_seconds: float | None, started: float):
        self.first_step, self.end_step = step, end_step
        self.max_seconds, self.started = max_seconds, started
        self.loop_started = time.monotonic()
        self.step = step
        self.stats = ""
        self.bar = tqdm(
            total=_PERMILLE,
            bar_format="train: {percentage:3.0f}%|{bar}| {desc}",
            dynamic_ncols=True,
        )
        self._refresh()

    def update(self, step: int, **stats: str) -> None:
        self.step = step
        if stats:
            self.stats = ", ".join(f"{k}={v}" for k, v in stats.items())
        self._refresh()

    def _refresh(self) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        span = self.end_step - self.first_step
        done_steps = self.step - self.first_step
        step_frac = done_steps / span if span > 0 else 1.0
        left = None
        if done_steps > 0:
            per_step = (now - self.loop_started) / done_steps
            left = per_step * (self.end_step - self.step)
        frac = step_frac
        if self.max_seconds is not None:
            frac = max(frac, min(elapsed / self.max_seconds, 1.0))
            time_left = max(self.max_seconds - elapsed, 0.0)
            left = time_left if left is None else min(left, time_left)
        fmt = tqdm.format_interval
        parts = [
            f"step {self.step}/{self.end_step}",
            f"{fmt(elapsed)} elapsed, {'?' if left is None else fmt(left)} left",
        ]
        if self.stats:
            parts.append(self.stats)
        self.bar.n = min(round(frac * _PERMILLE), _PERMILLE)
        self.bar.set_description_str(" | ".join(parts), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
