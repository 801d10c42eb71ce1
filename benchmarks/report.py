"""Turn benchmark results into tables, a plot and README's Performance section.

    python benchmarks/report.py RESULTS.json [--markdown OUT.md] [--plot OUT.png] [--readme README.md]

RESULTS.json is a GPU check report (benchmarks/gpu_check.py) or a plain pytest-benchmark JSON
(`pytest benchmarks --benchmark-only --benchmark-json=...`, the CPU run).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

BASELINE = {
    "rsmma": "naive",
    "gn_silu_conv": "eager",
    "unet": "release-eager-fp32",
    "sr": "release-eager-fp32",
}
README_START, README_END = "<!-- performance:start -->", "<!-- performance:end -->"


def load(path: str | Path) -> dict:
    data = json.loads(Path(path).read_text())
    if "environment" in data:
        return data
    rows = [
        {
            "group": b["group"],
            "name": b["name"],
            "median_s": b["stats"]["median"],
            "iqr_s": b["stats"]["iqr"],
            "rounds": b["stats"]["rounds"],
            **b.get("extra_info", {}),
        }
        for b in data.get("benchmarks", [])
    ]
    machine = data.get("machine_info", {})
    env = {
        "date": data.get("datetime"),
        "cpu": machine.get("cpu", {}).get("brand_raw"),
        "python": machine.get("python_version"),
        "commit": data.get("commit_info", {}).get("id"),
        **machine.get("mmfast", {}),
    }
    return {"environment": env, "benchmarks": rows}


def impl_of(row: dict) -> str:
    return row.get("impl") or row.get("recipe") or row["name"].rsplit("-", 1)[-1].rstrip("]")


# Suites renamed since results were committed: old name -> the op's name.
RENAMED_SUITES = {"audio-conv": "gn_silu_conv"}


def suite_of(group: str) -> str:
    name = group.split()[0]
    return RENAMED_SUITES.get(name, name)


def by_group(rows: list[dict]) -> dict[str, dict[str, dict]]:
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        groups[r["group"]][impl_of(r)] = r
    return groups


def _fmt_ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def geomean_speedups(report: dict, suite: str) -> str:
    """One line per mode: the geometric-mean speed-up of each implementation over the baseline."""
    import math

    per: dict[tuple[str, str], list[float]] = defaultdict(list)
    for g, rows in by_group(report["benchmarks"]).items():
        base = rows.get(BASELINE[suite])
        if suite_of(g) != suite or base is None:
            continue
        mode = g.split()[-1]
        for impl, r in rows.items():
            if impl != BASELINE[suite]:
                per[(mode, impl)].append(base["median_s"] / r["median_s"])
    lines = []
    for (mode, impl), xs in sorted(per.items()):
        gm = math.exp(sum(math.log(x) for x in xs) / len(xs))
        lines.append(
            f"- {mode}, `{impl}` over `{BASELINE[suite]}`: {gm:.2f}x (geometric mean of {len(xs)} shapes, {min(xs):.2f}x to {max(xs):.2f}x)"
        )
    return "\n".join(lines)


def markdown(
    report: dict, suites: tuple[str, ...] = ("rsmma", "gn_silu_conv", "unet", "sr")
) -> str:
    """One table per suite: a row per group, a column per implementation, median ms and the
    speed-up over the suite's baseline (naive attention, eager conv, release-style U-Net)."""
    groups = by_group(report["benchmarks"])
    out = []
    for suite in suites:
        names = [g for g in groups if suite_of(g) == suite]
        if not names:
            continue
        impls = sorted(
            {i for g in names for i in groups[g]}, key=lambda i: (i != BASELINE[suite], i)
        )
        has_tflops = any("tflops" in r for g in names for r in groups[g].values())
        out.append(
            f"\n**{suite}**: median ms (speed-up over `{BASELINE[suite]}`)"
            + (", TFLOP/s of the fastest" if has_tflops else "")
            + "\n"
        )
        out.append("| group | " + " | ".join(impls) + (" | best TFLOP/s |" if has_tflops else " |"))
        out.append("|---" * (len(impls) + 1 + has_tflops) + "|")
        for g in names:
            rows = groups[g]
            base = rows.get(BASELINE[suite])
            cells = []
            for i in impls:
                r = rows.get(i)
                if r is None:
                    cells.append("-")
                    continue
                cell = _fmt_ms(r["median_s"])
                if base is not None and i != BASELINE[suite]:
                    cell += f" ({base['median_s'] / r['median_s']:.2g}x)"
                cells.append(cell)
            line = f"| {g.split(' ', 1)[1]} | " + " | ".join(cells)
            if has_tflops:
                best = min(rows.values(), key=lambda r: r["median_s"])
                line += f" | {best.get('tflops', float('nan')):.3g} ({impl_of(best)})"
            out.append(line + " |")
    return "\n".join(out) + "\n"


def short_table(report: dict) -> str:
    """A compact text table: per group, the fastest implementation and every other's slowdown."""
    lines = []
    for g, rows in by_group(report["benchmarks"]).items():
        ranked = sorted(rows.items(), key=lambda kv: kv[1]["median_s"])
        best = ranked[0][1]["median_s"]
        cells = " ".join(
            f"{i}={r['median_s'] * 1e3:.3g}ms({r['median_s'] / best:.2g}x)" for i, r in ranked
        )
        lines.append(f"{g:<46} {cells}")
    return "\n".join(lines)


def plot(report: dict, path: str | Path) -> None:
    """Speed-up of each implementation over the baseline, per RS-MMA group (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {g: r for g, r in by_group(report["benchmarks"]).items() if suite_of(g) == "rsmma"}
    if not groups:
        return
    impls = sorted({i for r in groups.values() for i in r if i != "naive"})
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(names)), 4.5))
    width = 0.8 / max(len(impls), 1)
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for i, g in enumerate(names):
            base, r = groups[g].get("naive"), groups[g].get(impl)
            if base is not None and r is not None:
                xs.append(i + j * width)
                ys.append(base["median_s"] / r["median_s"])
        ax.bar(xs, ys, width, label=impl)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("speed-up over masked full attention")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    ax.set_xticklabels([g.split(" ", 1)[1] for g in names], rotation=60, ha="right", fontsize=7)
    env = report["environment"]
    ax.set_title(
        f"RS-MMA, {(env.get('gpu') or {}).get('name') or env.get('cpu') or 'cpu'}", fontsize=9
    )
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def readme_section(reports: list[tuple[str, dict]]) -> str:
    parts = [README_START, "", "## Performance", ""]
    parts.append(
        "Generated by `python benchmarks/report.py` from the committed results in `benchmarks/results/`. "
        "Times are medians of pytest-benchmark rounds, each implementation measured side by side in one run; "
        "the ratios are what to read (absolute times mean something only on the GPU)."
    )
    if not any((rep["environment"].get("gpu") or {}).get("name") for _, rep in reports):
        parts += [
            "",
            "No GPU run is committed yet: the Triton kernels and the compiled U-Net have only CPU "
            "rows here (the kernels run on the CPU only in Triton's interpreter, which says nothing of "
            "speed). `benchmarks/gpu_check.sh` is the prepared command for a GPU.",
        ]
    for source, rep in reports:
        env = rep["environment"]
        where = (env.get("gpu") or {}).get("name") or env.get("cpu") or "cpu"
        parts += [
            "",
            f"### {where} ({source})",
            "",
            f"{env.get('date', '')}, torch {env.get('torch', '?')}, triton {env.get('triton', '?')}, commit {str(env.get('commit'))[:10]}.",
        ]
        parts.append(markdown(rep, ("rsmma", "unet", "sr")))
        conv = geomean_speedups(rep, "gn_silu_conv")
        if conv:
            parts += [
                f"**gn_silu_conv** ({source.rsplit('.', 1)[0]}.md in the results has every shape):",
                "",
                conv,
                "",
            ]
    parts += [
        "Reproduce: `pytest benchmarks --benchmark-only --benchmark-json=out.json` (CPU: about 7 minutes on 2 cores), "
        "or on a GPU `bash benchmarks/gpu_check.sh OUT_DIR [BUDGET_S=420]` (smoke launches, the kernel tests, the released-size "
        "user path, then the benchmarks, each stage in a slot of the budget: under 8 minutes in all); then "
        "`python benchmarks/report.py OUT_DIR/gpu_check.json`.",
        "",
        README_END,
    ]
    return "\n".join(parts)


def update_readme(readme: Path, section: str) -> None:
    text = readme.read_text()
    if README_START in text:
        text = re.sub(
            re.escape(README_START) + r".*?" + re.escape(README_END),
            lambda _: section,
            text,
            flags=re.S,
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    readme.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+")
    p.add_argument("--markdown")
    p.add_argument("--plot")
    p.add_argument("--readme")
    args = p.parse_args()
    reports = [(Path(r).name, load(r)) for r in args.results]
    if args.markdown:
        Path(args.markdown).write_text("\n".join(markdown(rep) for _, rep in reports))
    if args.plot:
        plot(reports[-1][1], args.plot)
    if args.readme:
        update_readme(Path(args.readme), readme_section(reports))
    for name, rep in reports:
        print(f"== {name}\n{short_table(rep)}")


if __name__ == "__main__":
    main()
