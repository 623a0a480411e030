#!/usr/bin/python3
"""plot_ratios.py BENCH.json [MORE.json ...] -o ratios.png

Plots hostmem/floor ratios from hostmem-bench --json: one bar per operation
(the p50 ratio), a dot for the p99 ratio, and a black tick at the target where
the row has a ratio target.  Bars are green when the target is met, red when
missed, blue when the row has no ratio target.  Several files (for example
the tracing modes of run-tracing.sh) are drawn side by side per operation, one
shade per tracing mode.  The ratio axis is logarithmic: 1 is parity with the
raw syscalls, left of it hostmem is cheaper than the floor.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def size_name(n):
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return "%d%s" % (n >> shift, unit)
    return "" if n == 0 else str(n)


def label(row):
    parts = [row["operation"]]
    if row["variant"]:
        parts.append(row["variant"])
    if row["size"]:
        parts.append(size_name(row["size"]))
    if row["threads"] != 1:
        parts.append("%d threads" % row["threads"])
    if row["regions"]:
        parts.append("%d regions" % row["regions"])
    return " ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+")
    ap.add_argument("-o", "--output", default="ratios.png")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()

    series = []  # (mode, {label: row})
    order = []
    for path in args.json:
        with open(path) as f:
            doc = json.load(f)
        rows = {}
        for row in doc["rows"]:
            if not row["primary"] or row["floor_p50_ns"] <= 0:
                continue
            lab = label(row)
            rows[lab] = row
            if lab not in order:
                order.append(lab)
        series.append((doc.get("tracing_mode", path), rows))
    if not order:
        print("plot_ratios.py: no rows", file=sys.stderr)
        sys.exit(1)

    n = len(series)
    height = 0.8 / n
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(order) * max(1, n * 0.7) + 1.6))
    shades = [1.0, 0.65, 0.4, 0.25]
    for s, (mode, rows) in enumerate(series):
        alpha = shades[s % len(shades)]
        for i, lab in enumerate(order):
            row = rows.get(lab)
            if row is None:
                continue
            y = i + (s - (n - 1) / 2) * height
            ratio = row["ratio_p50"]
            met = row.get("target_met")
            target = row.get("target")
            colour = "tab:blue"
            if target and target.get("metric") == "ratio_p50":
                colour = "tab:green" if met else "tab:red"
            elif target:
                colour = "tab:green" if met else "tab:red"
            ax.barh(y, ratio, height=height * 0.9, color=colour, alpha=alpha,
                    label=mode if i == 0 else None)
            if row["ratio_p99"] > 0:
                ax.plot(row["ratio_p99"], y, "o", color="black", markersize=2.5, alpha=0.7)
            if target and target.get("metric") == "ratio_p50":
                ax.plot([target["max"]] * 2, [y - height / 2, y + height / 2], color="black",
                        linewidth=1.5)
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("hostmem / floor (p50 bar, p99 dot; black tick = target; log scale)")
    title = args.title or "hostmem vs the raw syscalls, same run"
    ax.set_title(title)
    if n > 1:
        ax.legend(title="tracing mode", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.25)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(args.output)


if __name__ == "__main__":
    main()
