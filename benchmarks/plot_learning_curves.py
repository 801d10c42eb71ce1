"""Plot the learning curves of a folder of `learning_curve.py` results and print them as a table.

python benchmarks/plot_learning_curves.py benchmarks/results/learning-curves
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [
    ("sync_mean", "A/V-sync score of samples (real ~1, shuffled ~0)"),
    ("ball_frames", "frames with one ball"),
    ("background_error", "median colour - background"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("folder")
    p.add_argument("--out", default=None, help="PNG path (default: <folder>/learning-curves.png)")
    args = p.parse_args()
    folder = Path(args.folder)
    runs = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 4))
    for run in runs:
        minutes = [0.0] + [pt["minutes"] for pt in run["points"]]
        start = {"sync_mean": 0.0, "ball_frames": 0.0, "background_error": None}
        for ax, (key, title) in zip(axes, PANELS):
            values = [pt[key] for pt in run["points"]]
            xs = minutes[1:] if start[key] is None else minutes
            ys = values if start[key] is None else [start[key], *values]
            ax.plot(xs, ys, marker="o", label=run["name"])
            ax.set_title(title)
            ax.set_xlabel("training minutes (2 CPU cores)")
    axes[0].axhline(runs[0]["reference"]["shuffled"]["mean"], color="grey", ls=":", lw=1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(args.out) if args.out else folder / "learning-curves.png"
    fig.savefig(out, dpi=100)
    print(f"wrote {out}\n")
    print("| run | minutes | steps | samples/s | sync | one ball | background |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        for pt in run["points"]:
            print(
                f"| {run['name']} | {pt['minutes']:.1f} | {pt['step']} | {pt['samples_per_s']:.1f} "
                f"| {pt['sync_mean']:+.2f} +- {pt['sync_std']:.2f} | {pt['ball_frames']:.2f} "
                f"| {pt['background_error']:.3f} |"
            )


if __name__ == "__main__":
    main()
