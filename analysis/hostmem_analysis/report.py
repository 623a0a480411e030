"""PNG plots of a replayed model, and an index.html that puts them on one page.

  memory.png     per process, on one time axis for all: reserved bytes, committed
                 bytes (own scale, commit limit, memory-state bands behind), and
                 a lane per kind of failed call (operation and HRESULT)
  latency.png    latency histogram per operation (log-log)
  failures.png   failures by operation, HRESULT and reason, coloured by level
  leaks.png      bytes still reserved at the end, by call site
  sizes.png      reserve sizes (power-of-two buckets)

and, inline in index.html, the flame graph of committed bytes at the peak
(flame.py).
"""

import html
import json
import os
import sys
import traceback

import matplotlib
import numpy

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator  # noqa: E402

from . import flame  # noqa: E402
from . import summary as summary_mod  # noqa: E402

MAX_PANELS = 8
MAX_POINTS = 4000
STATE_COLOURS = {"high": "#d8f0d8", "neutral": "#fbf3cc", "low": "#f7d0d0"}
LEVEL_COLOURS = {"task": "#4c72b0", "appdomain": "#dd8452", "process": "#c44e52",
                 "none": "#8c8c8c"}
RESERVED_COLOUR = "#4c72b0"
COMMITTED_COLOUR = "#dd8452"


def _bytes_label(v):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= div:
            q = v / div
            return ("%d %s" % (q, unit)) if q == int(q) else ("%.1f %s" % (q, unit))
    return "%d B" % v


def _bytes_axis(ax, axis="y", top=None):
    """Byte ticks on powers of two (1, 2, 4 MiB ... steps), labelled as such."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    if top:
        step = 1
        while top / step > 8:
            step *= 2
        a.set_major_locator(MultipleLocator(step))
    a.set_major_formatter(FuncFormatter(lambda v, _: _bytes_label(v) if v >= 0 else ""))


def _time_unit(span_ns):
    if span_ns < 2e6:
        return 1e3, "us"
    if span_ns < 2e9:
        return 1e6, "ms"
    return 1e9, "s"


def _envelope(ts, values, t0, n_bins):
    """Step series reduced to at most ~2*n_bins points, keeping each bin's maximum."""
    n = len(ts)
    if n <= 2 * n_bins:
        return [(t - t0) / 1e9 for t in ts], list(values)
    lo, hi = ts[0], ts[-1]
    width = max(1, (hi - lo) / n_bins)
    xs, ys = [], []
    cur_bin, cur_max, last = None, None, None
    for t, v in zip(ts, values):
        b = int((t - lo) / width)
        if b != cur_bin:
            if cur_bin is not None:
                xs.append((lo + cur_bin * width - t0) / 1e9)
                ys.append(cur_max)
                xs.append((lo + (cur_bin + 1) * width - t0) / 1e9)
                ys.append(last)
            cur_bin, cur_max = b, v
        elif v > cur_max:
            cur_max = v
        last = v
    xs.append((lo + cur_bin * width - t0) / 1e9)
    ys.append(cur_max)
    xs.append((ts[-1] - t0) / 1e9)
    ys.append(last)
    return xs, ys


def _state_spans(p, end_ts):
    """[(start_ts, end_ts, state)] from a process's memory_state changes."""
    spans = []
    changes = sorted(p.state_changes)
    if not changes:
        return spans
    start, state = p.first_ts, changes[0][1]
    for ts, old, new in changes:
        if state in STATE_COLOURS and ts > start:
            spans.append((start, ts, state))
        start, state = ts, new
    if state in STATE_COLOURS and end_ts > start:
        spans.append((start, end_ts, state))
    return spans


FAILURE_MARKERS = ("X", "o", "^", "s", "D", "v", "P", "*", "<", ">")
FAILURE_COLOURS = ("#c00000", "#7b3294", "#e66101", "#008837", "#0571b0", "#a6611a",
                   "#d01c8b", "#404040", "#5e3c99", "#b2182b")


def _failure_kinds(procs):
    """(op, hr) -> (marker, colour), the most frequent kinds first, one style each."""
    count = {}
    for p in procs:
        for _, op, hr in p.failure_marks:
            count[(op, hr)] = count.get((op, hr), 0) + 1
    kinds = sorted(count, key=lambda k: (-count[k], str(k)))
    return {k: (FAILURE_MARKERS[i % len(FAILURE_MARKERS)],
                FAILURE_COLOURS[i % len(FAILURE_COLOURS)]) for i, k in enumerate(kinds)}


def _series(p, ts, values, start, end, t0, div):
    """A process's step series from zero at its first event to its last, in plot units."""
    ts_r = [start] + ts + [end]
    xs, ys = _envelope(ts_r, [0] + list(values) + [values[-1]], t0, MAX_POINTS)
    return [x * 1e9 / div for x in xs], ys


def plot_memory(model, s, path):
    """Per process two panels on one shared time axis: reserved bytes (its own
    scale), then committed bytes with the commit limit, memory states and
    failed calls."""
    procs = [p for p in model.sorted_processes() if p.events][:MAX_PANELS]
    t0 = s["time_span"]["start_ns"] or 0
    t_end = max([p.last_ts or t0 for p in procs] + [t0])
    div, unit = _time_unit(max(1, t_end - t0))
    tx = lambda t: (t - t0) / div  # noqa: E731
    kinds = _failure_kinds(procs)
    # Per process: reserved, committed, and a lane per kind of failed call.
    rows, ratios = [], []
    for p in procs:
        lanes = len({(op, hr) for _, op, hr in p.failure_marks})
        rows.append(lanes)
        ratios += [1, 2] + ([0.3 + 0.22 * lanes] if lanes else [])
    if not procs:
        ratios = [1]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(14, 1.7 * sum(ratios) + 0.8),
                             squeeze=False, sharex=True, gridspec_kw={"height_ratios": ratios})
    row = 0
    for p, lanes in zip(procs, rows):
        ax_r, ax_c = axes[row, 0], axes[row + 1, 0]
        ax_f = axes[row + 2, 0] if lanes else None
        row += 3 if lanes else 2
        start, end = p.first_ts or t0, p.last_ts or t0
        ts = list(p.t_ts)
        # Reserved: address space, its own scale.
        if ts:
            xs, ys = _series(p, ts, p.t_reserved, start, end, t0, div)
            ax_r.step(xs, ys, where="post", color=RESERVED_COLOUR, lw=1.5, label="reserved")
            ax_r.fill_between(xs, ys, step="post", color=RESERVED_COLOUR, alpha=0.12)
        top_r = max(p.peak_reserved, 1) * 1.15
        _bytes_axis(ax_r, top=top_r)
        ax_r.set_ylim(0, top_r)
        ax_r.set_ylabel("reserved", fontsize=9)
        ax_r.grid(True, axis="y", alpha=0.3)
        never = len(p.leaks) + len(p.leaks_at_destroy)
        held = len(getattr(p, "live_at_crash", ()))
        title = "%s: peak reserved %s, peak committed %s, %s never released" % (
            p.label(), _bytes_label(p.peak_reserved), _bytes_label(p.peak_committed),
            summary_mod.plural(never, "region"))
        if held:
            title += ", %s live at the crash" % summary_mod.plural(held, "region")
        ax_r.set_title(title, fontsize=10, loc="left")
        ax_r.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        # Committed: the charge, against the commit limit, over the memory states.
        for a, b, st in _state_spans(p, end):
            ax_c.axvspan(tx(a), tx(b), color=STATE_COLOURS[st], lw=0, zorder=0)
        if ts:
            xs, ys = _series(p, ts, p.t_committed, start, end, t0, div)
            ax_c.step(xs, ys, where="post", color=COMMITTED_COLOUR, lw=1.5, label="committed")
            ax_c.fill_between(xs, ys, step="post", color=COMMITTED_COLOUR, alpha=0.2)
        top_c = max(p.peak_committed, 1)
        if p.peak_committed_ts is not None:
            ax_c.plot([tx(p.peak_committed_ts)], [p.peak_committed], marker="v",
                      color=COMMITTED_COLOUR, ms=8, ls="none",
                      label="peak committed %s" % _bytes_label(p.peak_committed))
        limits = sorted(p.commit_limits | {m.commit_limit for m in p.managers_by_addr.values()
                                           if m.commit_limit})
        for lim in limits:
            if lim <= 4 * top_c:
                ax_c.axhline(lim, color="#c44e52", ls="--", lw=1,
                             label="commit limit %s" % _bytes_label(lim))
                top_c = max(top_c, lim)
            else:  # drawn, it would flatten the committed bytes
                ax_c.plot([], [], color="#c44e52", ls="--", lw=1,
                          label="commit limit %s (above)" % _bytes_label(lim))
        if ax_f is not None:
            by_kind = {}
            for t, op, hr in p.failure_marks:
                by_kind.setdefault((op, hr), []).append(tx(t))
            order = sorted(by_kind, key=lambda kk: (-len(by_kind[kk]), str(kk)))
            for y, kind in enumerate(order):
                marker, colour = kinds[kind]
                fx = by_kind[kind]
                ax_f.plot(fx, [y] * len(fx), marker=marker, color=colour, ls="none", ms=7,
                          mew=1.5)
            ax_f.set_yticks(range(len(order)))
            ax_f.set_yticklabels(["%s %s (%d)" % (k[0], k[1], len(by_kind[k])) for k in order],
                                 fontsize=8)
            ax_f.set_ylim(len(order) - 0.5, -0.5)
            ax_f.grid(True, axis="y", alpha=0.3)
            ax_f.set_ylabel("failed", fontsize=9)
        top_c *= 1.15
        _bytes_axis(ax_c, top=top_c)
        ax_c.set_ylim(0, top_c)
        ax_c.set_ylabel("committed", fontsize=9)
        ax_c.grid(True, axis="y", alpha=0.3)
        handles, _ = ax_c.get_legend_handles_labels()
        present = {st for _, _, st in _state_spans(p, end)}
        handles += [Patch(color=STATE_COLOURS[x], label="memory %s" % x)
                    for x in ("high", "neutral", "low") if x in present]
        ax_c.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                    frameon=False)
    pad = max(1, t_end - t0) * 0.02
    axes[-1, 0].set_xlim(tx(t0 - pad), tx(t_end + pad))
    axes[-1, 0].set_xlabel("%s since %s" % (unit, summary_mod.wall(t0)), fontsize=9)
    if len(model.processes) > MAX_PANELS:
        fig.suptitle("first %d of %d processes" % (MAX_PANELS, len(model.processes)))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_latency(model, s, path):
    import math
    ops = [(op, st) for op, st in model.all.ops.items() if len(st.latencies)]
    if not ops:
        return False
    cols = min(3, len(ops))
    rows = (len(ops) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(ops):]:
        ax.set_visible(False)
    for ax, (op, st) in zip(axes.flat, ops):
        # The histogram's buckets, weighted: one point per bucket, not per call.
        pts = st.latencies.values()
        lat = [max(1, b) for b, _ in pts]
        weights = [k for _, k in pts]
        lo, hi = min(lat), max(lat)
        lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + (1 if hi == lo else 0)
        nb = max(10, 10 * (hi_e - lo_e))
        bins = [10 ** (lo_e + (hi_e - lo_e) * i / nb) for i in range(nb + 1)]
        # One filled step outline, not a patch per bin: on log axes each patch
        # costs milliseconds to place (R3: report within 1.5 times summary).
        counts, _ = numpy.histogram(lat, bins=bins, weights=weights)
        ax.stairs(counts, bins, fill=True, color=LEVEL_COLOURS["task"], alpha=0.85)
        ax.set_xscale("log")
        # No minor ticks on the log axes: they add little and cost half the
        # report's drawing time (R3: report within 1.5 times the summary).
        ax.minorticks_off()
        if max(counts) > 50:
            # Log counts only when the tail would vanish on a linear scale.
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.7)
            ax.minorticks_off()
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%d" % v if v >= 1 else ""))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True)) if max(counts) <= 50 else None
        lj = s["ops"].get(op, {}).get("latency_ns", {})
        for name, style in (("p50", "-"), ("p99", "--"), ("max", ":")):
            if lj.get(name):
                ax.axvline(lj[name], color="#333333", ls=style, lw=1,
                           label="%s %s" % (name, summary_mod.human_ns(lj[name])))
        # Ticks in the units the legend names (ns, us, ms, s), not bare ns.
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: summary_mod.human_ns(v)
                                                   .replace(".0 ", " ")))
        ax.set_title("%s (%s)" % (op, summary_mod.plural(st.count, "call")), fontsize=10)
        ax.set_xlabel("latency (time inside the call)")
        ax.set_ylabel("calls")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_failures(s, path):
    detail = s["failures"]["detail"]
    if not detail:
        return False
    groups = {}
    for d in detail:
        k = "%s: %s (%s)" % (d["op"], d["hresult"], d["reason"])
        groups.setdefault(k, {})
        groups[k][d["level"]] = groups[k].get(d["level"], 0) + d["count"]
    keys = sorted(groups, key=lambda k: sum(groups[k].values()))[-20:]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(keys) + 1.5))
    left = [0] * len(keys)
    levels = [lv for lv in ("task", "appdomain", "process", "none")
              if any(lv in groups[k] for k in keys)]
    for lv in levels:
        vals = [groups[k].get(lv, 0) for k in keys]
        ax.barh(keys, vals, left=left, color=LEVEL_COLOURS.get(lv, "#999999"),
                label="level %s" % lv)
        left = [a + b for a, b in zip(left, vals)]
    for y, total in enumerate(left):
        ax.annotate(str(total), (total, y), textcoords="offset points", xytext=(4, -3), fontsize=8)
    ax.set_xlabel("failed calls")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(left) * 1.1)
    ax.set_title("Failures by operation, HRESULT and reason (%d in all)" % s["failures"]["total"],
                 fontsize=11, loc="left")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_leaks(s, path):
    sites = s["leaks"]["by_caller"]
    if not sites:
        return False
    sites = list(reversed(sites))
    names = [e["site"] if len(e["site"]) <= 60 else "..." + e["site"][-57:] for e in sites]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(sites) + 1.6))
    ax.barh(names, [e["reserved_bytes"] for e in sites], color=RESERVED_COLOUR, alpha=0.5,
            label="reserved")
    ax.barh(names, [e["committed_bytes"] for e in sites], color=COMMITTED_COLOUR, height=0.45,
            label="of which committed")
    for y, e in enumerate(sites):
        ax.annotate("%s in %s" % (summary_mod.human_bytes(e["reserved_bytes"]),
                                  summary_mod.plural(e["regions"], "region")),
                    (e["reserved_bytes"], y), textcoords="offset points", xytext=(4, -3), fontsize=8)
    top = max(e["reserved_bytes"] for e in sites) * 1.3
    _bytes_axis(ax, "x", top=top)
    ax.set_xlim(0, top)
    ax.set_title("Leaks: %s, %s reserved, %s committed at the end, by call site"
                 % (summary_mod.plural(s["leaks"]["regions"], "region"),
                    summary_mod.human_bytes(s["leaks"]["reserved_bytes"]),
                    summary_mod.human_bytes(s["leaks"]["committed_bytes"])),
                 fontsize=11, loc="left")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_sizes(s, path):
    hist = s["reserve_size_histogram"]
    if not hist:
        return False
    labels = [summary_mod.human_bytes(int(k)).replace(".0 ", " ") for k in hist]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(hist) + 2), 3.5))
    ax.bar(labels, list(hist.values()), color=RESERVED_COLOUR)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%d" % v if v >= 1 else ""))
    ax.set_xlabel("region size (bucket starts at)")
    ax.set_ylabel("reserves")
    ax.set_title("Reserve sizes", fontsize=11, loc="left")
    ax.grid(True, axis="y", alpha=0.3)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _trust_html(s, banner, warn):
    """The verdict: one line when complete; else each reason, then what it means."""
    if not warn:
        return "<div class=\"box ok\">%s</div>\n" % html.escape(" ".join(banner.split()))
    return ("<div class=\"box warn\"><b>Incomplete trace</b><ul>%s</ul>%s</div>\n"
            % ("".join("<li>%s</li>" % html.escape(r) for r in s["trust"]["reasons"]),
               html.escape(summary_mod.trust_explanation(s))))


def _draw_all(jobs):
    """{name: whether it drew} for jobs [(name, draw(path) -> bool, path)].

    Each plot is drawn in a process of its own, forked from this one (the
    model and matplotlib are already loaded): matplotlib draws on one core,
    and drawing is most of what a report adds to the summary (R3).  Serial
    where fork is missing or there is one core."""
    if not hasattr(os, "fork") or (os.cpu_count() or 1) < 2:
        return {name: bool(fn(path)) for name, fn, path in jobs}
    sys.stdout.flush()
    sys.stderr.flush()
    children = {}
    for name, fn, path in jobs:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if fn(path) else 3
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = name
    drew = {}
    for pid, name in children.items():
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):
            raise RuntimeError("drawing %s failed (status %d)" % (name, code))
        drew[name] = code == 0
    return drew


def write(model, s, outdir):
    """Write the plots, summary.txt, summary.json and index.html; return index.html's path."""
    os.makedirs(outdir, exist_ok=True)
    images = []
    plots = (("memory.png", "Reserved and committed bytes over time",
              lambda p: plot_memory(model, s, p) or True),
             ("latency.png", "Latency per operation", lambda p: plot_latency(model, s, p)),
             ("failures.png", "Failures", lambda p: plot_failures(s, p)),
             ("leaks.png", "Leaks by call site", lambda p: plot_leaks(s, p)),
             ("sizes.png", "Reserve sizes", lambda p: plot_sizes(s, p)))
    drew = _draw_all([(name, fn, os.path.join(outdir, name)) for name, _, fn in plots])
    for name, title, _ in plots:
        target = os.path.join(outdir, name)
        if drew[name]:
            images.append((name, title))
        elif os.path.exists(target):
            os.remove(target)
    text = summary_mod.format_text(s)
    with open(os.path.join(outdir, "summary.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(s, f, indent=2)
        f.write("\n")
    index = os.path.join(outdir, "index.html")
    banner = summary_mod.trust_banner(s)
    warn = not banner.startswith("Trust: complete")
    cmd = summary_mod.command_line(s.get("command"))
    crashed = bool(s.get("command") and s["command"].get("signal") is not None)
    esc = html.escape
    with open(index, "w") as f:
        f.write("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hostmem report</title>\n"
                "<style>body{font-family:sans-serif;max-width:1400px;margin:1.5em auto;padding:0 1em}"
                "pre{font-size:12px;background:#f6f6f6;padding:1em;overflow-x:auto}"
                "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}"
                ".box{padding:0.6em;margin:0.4em 0;white-space:pre-wrap}"
                ".warn{background:#fbe3e3;border:1px solid #c44e52}"
                ".ok{background:#e3f4e3;border:1px solid #55a868}"
                ".cmd{background:#eef2f8;border:1px solid #4c72b0;font-family:monospace}"
                ".cmd.warn{background:#fbe3e3;border-color:#c44e52}"
                "ul{margin:0.3em 0}nav a{margin-right:1em}</style>\n"
                "</head><body>\n<h1>hostmem report</h1>\n")
        if cmd:
            f.write("<div class=\"box cmd%s\">Command: %s</div>\n"
                    % (" warn" if crashed else "", esc(cmd)))
        f.write(_trust_html(s, banner, warn))
        f.write("<p>%s .. %s; hosts: %s; %s; %d hostmem events. "
                "<a href=\"summary.json\">summary.json</a> "
                "<a href=\"summary.txt\">summary.txt</a></p>\n"
                % (esc(summary_mod.wall(s["time_span"]["start_ns"])),
                   esc(summary_mod.wall(s["time_span"]["end_ns"])),
                   esc(", ".join(s["hosts"])), summary_mod.plural(len(s["processes"]), "process",
                                                                  "processes"), s["events"]))
        f.write("<nav>%s<a href=\"#summary\">Summary</a></nav>\n"
                % "".join("<a href=\"#%s\">%s</a>" % (name.split(".")[0], esc(title))
                          for name, title in images))
        for name, title in images:
            f.write("<h2 id=\"%s\">%s</h2>\n<img src=\"%s\" alt=\"%s\">\n"
                    % (name.split(".")[0], esc(title), name, esc(title)))
            if name == "memory.png":
                f.write(flame.section(s))  # R5, under the peak it explains: inline SVG
        f.write("<h2 id=\"summary\">Summary</h2>\n<pre>%s</pre>\n</body></html>\n" % esc(text))
    return index
