"""Loss curves of a run from its log.jsonl, drawn to a PNG (for those without TensorBoard)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mmfast.files import atomic_path
from mmfast.train.trainer import LOG
from mmfast.train.watch import QUARTILES

PARTS = ("video", "audio", "mse", "vb")  # the coupled model's and the SR model's loss parts


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of `run_dir`/log.jsonl in order; a line a killed run left half written is
    skipped, and a resumed run's records replace those it repeats (the last record of a step
    counts)."""
    path = Path(run_dir) / LOG
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {LOG} (not a run folder of mmfast train?)")
    by_step: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record and "loss" in record:
            by_step[int(record["step"])] = record
    if not by_step:
        raise ValueError(f"{path}: no log records yet")
    return [by_step[s] for s in sorted(by_step)]


def _smooth(values: list[float], span: int) -> list[float]:
    """An exponential moving average over about `span` points (TensorBoard's smoothing)."""
    alpha, out, avg = 2.0 / (span + 1), [], None
    for v in values:
        if not math.isfinite(v):
            out.append(math.nan)
            continue
        avg = v if avg is None else avg + alpha * (v - avg)
        out.append(avg)
    return out


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw the loss curves of `run_dir` (total and per modality, by timestep quartile when
    logged) with the learning rate and speed beside them; write a PNG to `out` (default
    `run_dir`/loss.png) and return its path."""
    # Imported here: matplotlib is slow to import and only plots need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = read_log(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / "loss.png"
    steps = [r["step"] for r in records]
    span = max(1, len(records) // 20)

    def series(key: str) -> tuple[list[int], list[float]]:
        pairs = [(r["step"], float(r[key])) for r in records if r.get(key) is not None]
        return [s for s, _ in pairs], [v for _, v in pairs]

    fig = Figure(figsize=(11, 7), layout="constrained")
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    for key in ("loss", *PARTS):
        xs, ys = series(key)
        if xs:
            line = ax.plot(xs, ys, alpha=0.25, linewidth=0.8)[0]
            label = "loss (weighted, optimised)" if key == "loss" else f"{key} target MSE"
            ax.plot(xs, _smooth(ys, span), color=line.get_color(), label=label)
    ax.set_title("loss and each modality's unweighted error")

    ax = axes[0, 1]
    bounds = [round(q * 1000 / QUARTILES) for q in range(QUARTILES + 1)]
    drawn = False
    for q in range(QUARTILES):
        xs, ys = series(f"loss_t{q}")
        if xs:
            ax.plot(xs, _smooth(ys, span), label=f"t in [{bounds[q]}, {bounds[q + 1]})")
            drawn = True
    ax.set_title("target error by timestep quartile" if drawn else "(no timestep quartiles logged)")

    ax = axes[1, 0]
    xs, ys = series("lr")
    if xs:
        ax.plot(xs, ys, label="lr")
    xs, ys = series("grad_norm")
    if xs:
        twin = ax.twinx()
        twin.plot(xs, _smooth(ys, span), color="tab:red", label="grad norm")
        twin.set_ylabel("grad norm", color="tab:red")
    ax.set_title("learning rate and gradient norm")

    ax = axes[1, 1]
    xs, ys = series("samples_per_s")
    ax.plot(xs, ys, label="samples/s")
    xs, ys = series("data_wait")
    if xs:
        twin = ax.twinx()
        twin.plot(xs, ys, color="tab:orange", label="data-wait share")
        twin.set_ylim(0, 1)
        twin.set_ylabel("data-wait share", color="tab:orange")
    ax.set_title("speed")

    for ax in axes.flat:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in (axes[0, 0], axes[0, 1]):
        if all(v > 0 for line in ax.get_lines() for v in line.get_ydata() if math.isfinite(v)):
            ax.set_yscale("log")
    fig.suptitle(f"{Path(run_dir).resolve().name}: steps {steps[0]} to {steps[-1]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        FigureCanvasAgg(fig).print_png(str(tmp))
    return out
