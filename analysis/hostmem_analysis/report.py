"""SVG plots of a replayed model, and an index.html that puts them on one page.

  memory.svg     per process, on one time axis for all: reserved bytes, committed
                 bytes (own scale, commit limit, memory-state bands behind), and
                 a lane per kind of failed call (operation and HRESULT)
  latency.svg    latency histogram per operation (log-log)
  failures.svg   failures by operation, HRESULT and reason, coloured by level
  leaks.svg      bytes still reserved at the end, by call site
  sizes.svg      reserve sizes (power-of-two buckets)

and index.html, one page that holds them all (each plot inline as <svg>,
so that the page alone is the whole report and opens offline, hover texts
included) with the flame graph of committed bytes at the peak (flame.py).
The plots are also written as files beside it, to be used on their own.

The plots are written as SVG here, a few thousand elements each, with no
plotting library: a series is drawn at most two points per horizontal pixel
(each pixel's maximum and its last value), which is all a pixel can show.
Drawing them costs milliseconds, so the report takes about as long as the
summary (R3: at most 1.5 times); a plotting library costs seconds to import
and to lay out each figure.
"""

import html
import json
import math
import os

from . import flame
from . import summary as summary_mod
from .output import atomic, make_dir, write_text

MAX_PANELS = 8
STATE_COLOURS = {"high": "#d8f0d8", "neutral": "#fbf3cc", "low": "#f7d0d0"}
LEVEL_COLOURS = {"task": "#4c72b0", "appdomain": "#dd8452", "process": "#c44e52",
                 "none": "#8c8c8c"}
RESERVED_COLOUR = "#4c72b0"
COMMITTED_COLOUR = "#dd8452"
LIMIT_COLOUR = "#c44e52"
FONT = 11  # px
CHAR_W = 0.6  # average glyph width, in font sizes (sans-serif)


def _e(s):
    return html.escape(str(s), quote=True)


def _f(v):
    """A coordinate, to a tenth of a pixel."""
    return ("%.1f" % v).rstrip("0").rstrip(".")


def _text_w(s, size=FONT):
    return len(s) * size * CHAR_W


class Svg:
    """An SVG document built as a list of elements."""

    def __init__(self, w, h):
        self.w, self.h = w, h
        self.parts = []

    def text(self, x, y, s, size=FONT, anchor="start", colour="#222", bold=False, rotate=None):
        extra = ' font-weight="bold"' if bold else ""
        if rotate is not None:
            extra += ' transform="rotate(%s %s %s)"' % (_f(rotate), _f(x), _f(y))
        self.parts.append('<text x="%s" y="%s" font-size="%s" text-anchor="%s" fill="%s"%s>%s'
                          '</text>' % (_f(x), _f(y), size, anchor, colour, extra, _e(s)))

    def line(self, x1, y1, x2, y2, colour="#222", width=1, dash=None, opacity=None):
        extra = ' stroke-dasharray="%s"' % dash if dash else ""
        if opacity is not None:
            extra += ' stroke-opacity="%s"' % opacity
        self.parts.append('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s/>'
                          % (_f(x1), _f(y1), _f(x2), _f(y2), colour, width, extra))

    def rect(self, x, y, w, h, fill, opacity=None, title=None):
        extra = ' fill-opacity="%s"' % opacity if opacity is not None else ""
        body = "<title>%s</title>" % _e(title) if title else ""
        self.parts.append('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"%s>%s</rect>'
                          % (_f(x), _f(y), _f(max(0.0, w)), _f(max(0.0, h)), fill, extra, body))

    def path(self, d, fill="none", stroke=None, width=1, opacity=None, cls=None):
        extra = ' stroke="%s" stroke-width="%s" stroke-linejoin="round"' % (stroke, width) \
            if stroke else ""
        if opacity is not None:
            extra += ' fill-opacity="%s"' % opacity
        if cls:
            extra += ' class="%s"' % cls
        self.parts.append('<path d="%s" fill="%s"%s/>' % (d, fill, extra))

    def marker(self, x, y, kind, colour, r=4.5):
        """A failure mark: each kind its own shape."""
        x, y = float(x), float(y)
        if kind == "o":
            self.parts.append('<circle cx="%s" cy="%s" r="%s" fill="none" stroke="%s" '
                              'stroke-width="1.5"/>' % (_f(x), _f(y), _f(r), colour))
            return
        shapes = {
            "X": "M%s %sL%s %sM%s %sL%s %s" % (x - r, y - r, x + r, y + r, x - r, y + r, x + r,
                                                 y - r),
            "P": "M%s %sL%s %sM%s %sL%s %s" % (x - r, y, x + r, y, x, y - r, x, y + r),
            "^": "M%s %sL%s %sL%s %sZ" % (x, y - r, x + r, y + r, x - r, y + r),
            "v": "M%s %sL%s %sL%s %sZ" % (x, y + r, x + r, y - r, x - r, y - r),
            "<": "M%s %sL%s %sL%s %sZ" % (x - r, y, x + r, y - r, x + r, y + r),
            ">": "M%s %sL%s %sL%s %sZ" % (x + r, y, x - r, y - r, x - r, y + r),
            "s": "M%s %sH%sV%sH%sZ" % (x - r, y - r, x + r, y + r, x - r),
            "D": "M%s %sL%s %sL%s %sL%s %sZ" % (x, y - r, x + r, y, x, y + r, x - r, y),
        }
        d = shapes.get(kind) or shapes["D"]
        self.parts.append('<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>'
                          % (d, colour))

    def legend(self, x, y, items, size=10):
        """items: (kind, colour, label, extra) with kind "line", "dash", "box" or a marker."""
        for i, (kind, colour, label) in enumerate(items):
            yy = y + i * (size + 6)
            if kind == "box":
                self.rect(x, yy - size + 2, 14, size - 1, colour)
            elif kind in ("line", "dash", "dot"):
                self.line(x, yy - size / 2 + 2, x + 14, yy - size / 2 + 2, colour, 2 if
                          kind == "line" else 1.2, {"dash": "5 3", "dot": "1.5 2"}.get(kind))
            else:
                self.marker(x + 7, yy - size / 2 + 2, kind, colour, 4)
            self.text(x + 19, yy, label, size)

    def render(self):
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
                'viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif">\n'
                '<rect width="100%%" height="100%%" fill="white"/>\n%s\n</svg>\n'
                % (self.w, self.h, self.w, self.h, "\n".join(self.parts)))

    def save(self, path):
        write_text(path, self.render())


class Scale:
    """Data to pixels, linear or log10."""

    def __init__(self, lo, hi, p0, p1, log=False):
        self.log = log
        if log:
            lo, hi = math.log10(max(lo, 1e-300)), math.log10(max(hi, 1e-300))
        if hi <= lo:
            hi = lo + 1
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1
        self.k = (p1 - p0) / (hi - lo)

    def __call__(self, v):
        if self.log:
            v = math.log10(v) if v > 0 else self.lo - 1
        return self.p0 + (v - self.lo) * self.k

    def clamp(self, v):
        p = self(v)
        a, b = min(self.p0, self.p1), max(self.p0, self.p1)
        return a if p < a else b if p > b else p


def _nice_step(span, n=6):
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if mag * m >= raw:
            return mag * m
    return mag * 10


def _linear_ticks(lo, hi, n=6):
    step = _nice_step(hi - lo, n)
    v = math.ceil(lo / step) * step
    out = []
    while v <= hi + step * 1e-9:
        out.append(v)
        v += step
    return out


def _log_ticks(lo, hi):
    return [10.0 ** k for k in range(math.ceil(math.log10(max(lo, 1e-300)) - 1e-9),
                                     math.floor(math.log10(max(hi, 1e-300)) + 1e-9) + 1)]


def _bytes_label(v):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= div:
            q = v / div
            return ("%d %s" % (q, unit)) if q == int(q) else ("%.1f %s" % (q, unit))
    return "%d B" % v


def _byte_ticks(top):
    """Power-of-two steps (1, 2, 4 MiB...), at most 8 of them up to `top`."""
    step = 1
    while top / step > 8:
        step *= 2
    return [(k * step, _bytes_label(k * step)) for k in range(int(top // step) + 1)]


def _num_label(v):
    if v == int(v):
        return "%d" % v
    return ("%.3g" % v)


def _time_unit(span_ns):
    if span_ns < 2e6:
        return 1e3, "us"
    if span_ns < 2e9:
        return 1e6, "ms"
    return 1e9, "s"


def _frame(svg, x0, y0, w, h, xs=None, ys=None, xticks=(), yticks=(), grid="y",
           xlabels=True, size=10):
    """The axes box, its grid and tick labels; ticks are (value, label)."""
    for v, label in yticks:
        y = ys(v)
        if y < y0 - 0.5 or y > y0 + h + 0.5:
            continue
        if grid in ("y", "both"):
            svg.line(x0, y, x0 + w, y, "#000", 0.6, opacity=0.15)
        svg.line(x0 - 4, y, x0, y, "#444")
        svg.text(x0 - 6, y + size * 0.35, label, size, "end")
    for v, label in xticks:
        x = xs(v)
        if x < x0 - 0.5 or x > x0 + w + 0.5:
            continue
        if grid in ("x", "both"):
            svg.line(x, y0, x, y0 + h, "#000", 0.6, opacity=0.15)
        svg.line(x, y0 + h, x, y0 + h + 4, "#444")
        if xlabels:
            svg.text(x, y0 + h + 5 + size, label, size, "middle")
    svg.parts.append('<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#444" '
                     'stroke-width="0.8"/>' % (_f(x0), _f(y0), _f(w), _f(h)))


def _envelope(ts, values, n_bins):
    """A step series reduced to at most ~2*n_bins points: per bin its maximum,
    then its last value (a peak is never lost between two pixels)."""
    n = len(ts)
    if n <= 2 * n_bins:
        return list(ts), list(values)
    lo, hi = ts[0], ts[-1]
    width = max(1, (hi - lo) / n_bins)
    xs, ys = [], []
    cur_bin, cur_max, last = None, None, None
    for t, v in zip(ts, values):
        b = int((t - lo) / width)
        if b != cur_bin:
            if cur_bin is not None:
                xs.append(lo + cur_bin * width)
                ys.append(cur_max)
                xs.append(lo + (cur_bin + 1) * width)
                ys.append(last)
            cur_bin, cur_max = b, v
        elif v > cur_max:
            cur_max = v
        last = v
    xs.append(lo + cur_bin * width)
    ys.append(cur_max)
    xs.append(ts[-1])
    ys.append(last)
    return xs, ys


def _step_paths(xs, ys, sx, sy, base):
    """(outline, filled area) path data of a post-step series."""
    pts = ["M%s %s" % (_f(sx(xs[0])), _f(sy(ys[0])))]
    for i in range(1, len(xs)):
        pts.append("H%sV%s" % (_f(sx(xs[i])), _f(sy(ys[i]))))
    line = "".join(pts)
    area = line + "V%sH%sZ" % (_f(base), _f(sx(xs[0])))
    return line, area


def _series(svg, start, ts, end, values, n_bins, xs, ys, base, colour, opacity):
    """A process's byte count over time: from 0 at `start`, its samples, held
    to `end`; the area under it, then its line."""
    sx, sv = _envelope([start] + ts + [end], [0] + list(values) + [values[-1]], n_bins)
    line, area = _step_paths(sx, sv, xs, ys, base)
    svg.path(area, colour, opacity=opacity)
    svg.path(line, stroke=colour, width=1.5)


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


FAILURE_MARKERS = ("X", "o", "^", "s", "D", "v", "P", "<", ">")
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


def plot_memory(model, s, path):
    """Per process two panels on one shared time axis: reserved bytes (its own
    scale), then committed bytes with the commit limit, memory states and
    failed calls."""
    procs = [p for p in model.sorted_processes() if p.events][:MAX_PANELS]
    t0 = s["time_span"]["start_ns"] or 0
    t_end = max([p.last_ts or t0 for p in procs] + [t0])
    div, unit = _time_unit(max(1, t_end - t0))
    pad = max(1, t_end - t0) * 0.02
    left, pw, legend_w = 90, 1100, 260
    width = left + pw + legend_w
    xs = Scale(t0 - pad, t_end + pad, left, left + pw)
    span = (t_end + pad - (t0 - pad)) / div
    xticks = [(t0 + v * div, _num_label(v)) for v in _linear_ticks(-pad / div, span, 10)]
    kinds = _failure_kinds(procs)
    r_h, c_h, gap, title_h = 90, 180, 8, 26
    layout = []
    for p in procs:
        lanes = len({(op, hr) for _, op, hr in p.failure_marks})
        layout.append((p, lanes, title_h + r_h + gap + c_h + (gap + 12 + 22 * lanes
                                                               if lanes else 0) + 18))
    height = sum(h for _, _, h in layout) + 50 + (20 if len(model.processes) > MAX_PANELS else 0)
    svg = Svg(width, max(height, 120))
    y = 10
    if len(model.processes) > MAX_PANELS:
        svg.text(width / 2, y + 12, "first %d of %d processes" % (MAX_PANELS,
                                                                  len(model.processes)),
                 12, "middle", bold=True)
        y += 20
    n_bins = pw  # two points per pixel column at most
    for i, (p, lanes, h) in enumerate(layout):
        start, end = p.first_ts or t0, p.last_ts or t0
        ts = list(p.t_ts)
        never = len(p.leaks) + len(p.leaks_at_destroy)
        held = len(getattr(p, "live_at_crash", ()))
        title = "%s: peak reserved %s, peak committed %s, %s never released" % (
            p.label(), _bytes_label(p.peak_reserved), _bytes_label(p.peak_committed),
            summary_mod.plural(never, "region"))
        if held:
            title += ", %s live at the crash" % summary_mod.plural(held, "region")
        svg.text(left, y + 16, title, 12)
        y += title_h
        last = i == len(layout) - 1 and not lanes
        # Reserved: address space, its own scale.
        top_r = max(p.peak_reserved, 1) * 1.15
        ys = Scale(0, top_r, y + r_h, y)
        _frame(svg, left, y, pw, r_h, xs, ys, xticks, _byte_ticks(top_r), "y", False)
        if ts:
            _series(svg, start, ts, end, p.t_reserved, n_bins, xs, ys, y + r_h, RESERVED_COLOUR, 0.12)
        svg.text(18, y + r_h / 2, "reserved", 10, "middle", rotate=-90)
        svg.legend(left + pw + 12, y + 12, [("line", RESERVED_COLOUR, "reserved")])
        y += r_h + gap
        # Committed: the charge, against the commit limit, over the memory states.
        top_c = max(p.peak_committed, 1)
        limits = sorted(p.commit_limits | {m.commit_limit for m in p.managers_by_addr.values()
                                           if m.commit_limit})
        shown = [lim for lim in limits if lim <= 4 * top_c]
        if shown:
            top_c = max(top_c, max(shown))
        top_c *= 1.15
        ys = Scale(0, top_c, y + c_h, y)
        spans = _state_spans(p, end)
        for a, b, st in spans:
            svg.rect(xs.clamp(a), y, xs.clamp(b) - xs.clamp(a), c_h, STATE_COLOURS[st])
        _frame(svg, left, y, pw, c_h, xs, ys, xticks, _byte_ticks(top_c), "y", last)
        items = [("line", COMMITTED_COLOUR, "committed")]
        if ts:
            _series(svg, start, ts, end, p.t_committed, n_bins, xs, ys, y + c_h, COMMITTED_COLOUR, 0.2)
        if p.peak_committed_ts is not None:
            svg.marker(xs(p.peak_committed_ts), ys(p.peak_committed) - 6, "v", COMMITTED_COLOUR, 5)
            items.append(("v", COMMITTED_COLOUR, "peak committed %s"
                          % _bytes_label(p.peak_committed)))
        for lim in limits:
            if lim in shown:
                svg.line(left, ys(lim), left + pw, ys(lim), LIMIT_COLOUR, 1, "6 3")
                items.append(("dash", LIMIT_COLOUR, "commit limit %s" % _bytes_label(lim)))
            else:  # drawn, it would flatten the committed bytes
                items.append(("dash", LIMIT_COLOUR, "commit limit %s (above)"
                              % _bytes_label(lim)))
        present = {st for _, _, st in spans}
        items += [("box", STATE_COLOURS[x], "memory %s" % x)
                  for x in ("high", "neutral", "low") if x in present]
        svg.legend(left + pw + 12, y + 12, items)
        svg.text(18, y + c_h / 2, "committed", 10, "middle", rotate=-90)
        y += c_h
        if lanes:
            y += gap
            by_kind = {}
            for t, op, hr in p.failure_marks:
                by_kind.setdefault((op, hr), []).append(t)
            order = sorted(by_kind, key=lambda kk: (-len(by_kind[kk]), str(kk)))
            lh = 12 + 22 * lanes
            yl = lambda k: y + 6 + 22 * k + 11  # noqa: E731
            _frame(svg, left, y, pw, lh, xs, None, xticks,
                   [], "none", i == len(layout) - 1)
            for k, kind in enumerate(order):
                marker, colour = kinds[kind]
                svg.line(left, yl(k), left + pw, yl(k), "#000", 0.6, opacity=0.15)
                for t in by_kind[kind]:
                    svg.marker(xs(t), yl(k), marker, colour)
                svg.text(left + pw + 12, yl(k) + 4, "%s %s (%d)" % (kind[0], kind[1],
                                                                    len(by_kind[kind])), 10)
            svg.text(18, y + lh / 2, "failed", 10, "middle", rotate=-90)
            y += lh
        y += 18
    svg.text(left + pw / 2, y + 16, "%s since %s" % (unit, summary_mod.wall(t0)), 11, "middle")
    svg.save(path)


def plot_latency(model, s, path):
    ops = [(op, st) for op, st in model.all.ops.items() if len(st.latencies)]
    if not ops:
        return False
    cols = min(3, len(ops))
    rows = (len(ops) + cols - 1) // cols
    cw, ch = 440, 300
    svg = Svg(cw * cols, ch * rows)
    for n, (op, st) in enumerate(ops):
        x0, y0 = (n % cols) * cw + 70, (n // cols) * ch + 30
        w, h = cw - 90, ch - 80
        # The histogram's buckets, weighted: one bar per decade tenth, not per call.
        pts = st.latencies.values()
        lo = max(1, min(b for b, _ in pts))
        hi = max(1, max(b for b, _ in pts))
        lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + (1 if hi == lo else 0)
        if hi_e <= lo_e:
            hi_e = lo_e + 1
        nb = max(10, 10 * (hi_e - lo_e))
        counts = [0] * nb
        for b, k in pts:
            i = int((math.log10(max(1, b)) - lo_e) / (hi_e - lo_e) * nb)
            counts[min(nb - 1, max(0, i))] += k
        edges = [10 ** (lo_e + (hi_e - lo_e) * i / nb) for i in range(nb + 1)]
        top = max(counts)
        xs = Scale(edges[0], edges[-1], x0, x0 + w, log=True)
        if top > 50:  # log counts only when the tail would vanish on a linear scale
            ys = Scale(0.7, top * 1.5, y0 + h, y0, log=True)
            yticks = [(v, "%d" % v) for v in _log_ticks(1, top * 1.5)]
        else:
            ys = Scale(0, top * 1.1, y0 + h, y0)
            yticks = [(v, "%d" % v) for v in _linear_ticks(0, top * 1.1, 5) if v == int(v)]
        xticks = [(v, summary_mod.human_ns(v).replace(".0 ", " ")) for v in _log_ticks(*edges[::nb])]
        _frame(svg, x0, y0, w, h, xs, ys, xticks, yticks, "both")
        d = ["M%s %s" % (_f(x0), _f(y0 + h))]
        for i, c in enumerate(counts):
            yy = ys(c) if c > 0 else y0 + h
            d.append("V%sH%s" % (_f(yy), _f(xs(edges[i + 1]))))
        d.append("V%sZ" % _f(y0 + h))
        svg.path("".join(d), LEVEL_COLOURS["task"], opacity=0.85)
        lj = s["ops"].get(op, {}).get("latency_ns", {})
        items = []
        for name, style in (("p50", "line"), ("p99", "dash"), ("max", "dot")):
            if lj.get(name):
                x = xs.clamp(lj[name])
                svg.line(x, y0, x, y0 + h, "#333", 1,
                         {"dash": "5 3", "dot": "1.5 2"}.get(style))
                items.append((style, "#333", "%s %s" % (name, summary_mod.human_ns(lj[name]))))
        svg.legend(x0 + w - 110, y0 + 14, items, 9)
        svg.text(x0 + w / 2, y0 - 10, "%s (%s)" % (op, summary_mod.plural(st.count, "call")),
                 12, "middle")
        svg.text(x0 + w / 2, y0 + h + 34, "latency (time inside the call)", 10, "middle")
        svg.text(x0 - 52, y0 + h / 2, "calls", 10, "middle", rotate=-90)
    svg.save(path)
    return True


def _hbars(keys):
    """(svg, x0, y0, w, h, bar height) of a chart with a horizontal bar per key, top down,
    the keys written on the left."""
    label_w = max(_text_w(k, 10) for k in keys) + 16
    x0, w = max(120, label_w), 760
    bh = 26
    h = bh * len(keys) + 10
    return Svg(int(x0 + w + 200), int(h + 90)), x0, 34, w, h, bh


def plot_failures(s, path):
    detail = s["failures"]["detail"]
    if not detail:
        return False
    groups = {}
    for d in detail:
        k = "%s: %s (%s)" % (d["op"], d["hresult"], d["reason"])
        groups.setdefault(k, {})
        groups[k][d["level"]] = groups[k].get(d["level"], 0) + d["count"]
    keys = sorted(groups, key=lambda k: -sum(groups[k].values()))[:20]
    levels = [lv for lv in ("task", "appdomain", "process", "none")
              if any(lv in groups[k] for k in keys)]
    totals = [sum(groups[k].values()) for k in keys]
    svg, x0, y0, w, h, bh = _hbars(keys)
    svg.text(x0, 20, "Failures by operation, HRESULT and reason (%d in all)"
             % s["failures"]["total"], 12)
    xs = Scale(0, max(totals) * 1.1, x0, x0 + w)
    ys = Scale(0, h, y0, y0 + h)
    xticks = [(v, _num_label(v)) for v in _linear_ticks(0, max(totals) * 1.1, 8) if v == int(v)]
    _frame(svg, x0, y0, w, h, xs, ys, xticks, [], "x")
    for i, k in enumerate(keys):
        yy = y0 + 5 + i * bh
        left = 0
        for lv in levels:
            v = groups[k].get(lv, 0)
            if v:
                svg.rect(xs(left), yy + 3, xs(left + v) - xs(left), bh - 6,
                         LEVEL_COLOURS.get(lv, "#999999"),
                         title="%s, level %s: %d" % (k, lv, v))
                left += v
        svg.text(x0 - 6, yy + bh / 2 + 4, k, 10, "end")
        svg.text(xs(left) + 4, yy + bh / 2 + 4, str(left), 9)
    svg.legend(x0 + w + 16, y0 + 12, [("box", LEVEL_COLOURS.get(lv, "#999999"), "level %s" % lv)
                                      for lv in levels])
    svg.text(x0 + w / 2, y0 + h + 34, "failed calls", 10, "middle")
    svg.save(path)
    return True


def plot_leaks(s, path):
    sites = s["leaks"]["by_caller"]
    if not sites:
        return False
    names = [e["site"] if len(e["site"]) <= 60 else "..." + e["site"][-57:] for e in sites]
    svg, x0, y0, w, h, bh = _hbars(names)
    svg.text(x0, 20, "Leaks: %s, %s reserved, %s committed at the end, by call site"
             % (summary_mod.plural(s["leaks"]["regions"], "region"),
                summary_mod.human_bytes(s["leaks"]["reserved_bytes"]),
                summary_mod.human_bytes(s["leaks"]["committed_bytes"])), 12)
    top = max(max(e["reserved_bytes"] for e in sites), 1) * 1.3
    xs = Scale(0, top, x0, x0 + w)
    _frame(svg, x0, y0, w, h, xs, None, _byte_ticks(top), [], "x")
    for i, (name, e) in enumerate(zip(names, sites)):
        yy = y0 + 5 + i * bh
        svg.rect(x0, yy + 3, xs(e["reserved_bytes"]) - x0, bh - 6, RESERVED_COLOUR, 0.5,
                 title="%s: %s reserved" % (e["site"], summary_mod.human_bytes(e["reserved_bytes"])))
        svg.rect(x0, yy + bh / 4 + 1.5, xs(e["committed_bytes"]) - x0, bh / 2 - 3,
                 COMMITTED_COLOUR,
                 title="%s: %s committed" % (e["site"],
                                             summary_mod.human_bytes(e["committed_bytes"])))
        svg.text(x0 - 6, yy + bh / 2 + 4, name, 10, "end")
        svg.text(xs(e["reserved_bytes"]) + 4, yy + bh / 2 + 4, "%s in %s" % (
            summary_mod.human_bytes(e["reserved_bytes"]),
            summary_mod.plural(e["regions"], "region")), 9)
    svg.legend(x0 + w + 16, y0 + 12, [("box", RESERVED_COLOUR, "reserved"),
                                      ("box", COMMITTED_COLOUR, "of which committed")])
    svg.save(path)
    return True


def plot_sizes(s, path):
    hist = s["reserve_size_histogram"]
    if not hist:
        return False
    labels = [summary_mod.human_bytes(int(k)).replace(".0 ", " ") for k in hist]
    counts = list(hist.values())
    bw = 46
    x0, y0, h = 70, 34, 240
    w = max(400, bw * len(hist))
    svg = Svg(x0 + w + 30, y0 + h + 100)
    svg.text(x0, 20, "Reserve sizes", 12)
    top = max(counts) * 1.5
    ys = Scale(0.7, top, y0 + h, y0, log=True)
    xs = Scale(0, w, x0, x0 + w)
    _frame(svg, x0, y0, w, h, xs, ys, [], [(v, "%d" % v) for v in _log_ticks(1, top)], "y")
    step = w / len(hist)
    for i, (label, c) in enumerate(zip(labels, counts)):
        x = x0 + i * step
        svg.rect(x + step * 0.1, ys(c), step * 0.8, y0 + h - ys(c), RESERVED_COLOUR,
                 title="%s: %d reserves" % (label, c))
        svg.text(x + step / 2 + 4, y0 + h + 14, label, 10, "end", rotate=-30)
    svg.text(x0 + w / 2, y0 + h + 70, "region size (bucket starts at)", 10, "middle")
    svg.text(x0 - 50, y0 + h / 2, "reserves", 10, "middle", rotate=-90)
    svg.save(path)
    return True


def _trust_html(s, banner, warn):
    """The verdict: one line when complete; else each reason, then what it means."""
    if not warn:
        return "<div class=\"box ok\">%s</div>\n" % html.escape(" ".join(banner.split()))
    return ("<div class=\"box warn\"><b>Incomplete trace</b><ul>%s</ul>%s</div>\n"
            % ("".join("<li>%s</li>" % html.escape(r) for r in s["trust"]["reasons"]),
               html.escape(summary_mod.trust_explanation(s))))


def write(model, s, outdir):
    """Write the plots, summary.txt, summary.json and index.html; return index.html's path.
    Each file is written whole or not at all (output.atomic)."""
    make_dir(outdir)
    images = []  # (file name, title, the SVG)
    plots = (("memory.svg", "Reserved and committed bytes over time",
              lambda p: plot_memory(model, s, p) or True),
             ("latency.svg", "Latency per operation", lambda p: plot_latency(model, s, p)),
             ("failures.svg", "Failures", lambda p: plot_failures(s, p)),
             ("leaks.svg", "Leaks by call site", lambda p: plot_leaks(s, p)),
             ("sizes.svg", "Reserve sizes", lambda p: plot_sizes(s, p)))
    for name, title, fn in plots:
        target = os.path.join(outdir, name)
        if fn(target):
            with open(target) as f:
                images.append((name, title, f.read()))
        elif os.path.exists(target):
            os.remove(target)
    text = summary_mod.format_text(s)
    write_text(os.path.join(outdir, "summary.txt"), text)
    with atomic(os.path.join(outdir, "summary.json")) as f:
        json.dump(s, f, indent=2)
        f.write("\n")
    index = os.path.join(outdir, "index.html")
    banner = summary_mod.trust_banner(s)
    warn = not banner.startswith("Trust: complete")
    cmds = [(summary_mod.command_line(c), c.get("signal") is not None)
            for c in s.get("commands") or ([s["command"]] if s.get("command") else [])]
    esc = html.escape
    with atomic(index) as f:
        f.write("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hostmem report</title>\n"
                "<style>body{font-family:sans-serif;max-width:1400px;margin:1.5em auto;padding:0 1em}"
                "pre{font-size:12px;background:#f6f6f6;padding:1em;overflow-x:auto}"
                "svg.plot{display:block;max-width:100%;height:auto;border:1px solid #ddd;"
                "margin:0.5em 0}"
                ".box{padding:0.6em;margin:0.4em 0;white-space:pre-wrap}"
                ".warn{background:#fbe3e3;border:1px solid #c44e52}"
                ".ok{background:#e3f4e3;border:1px solid #55a868}"
                ".cmd{background:#eef2f8;border:1px solid #4c72b0;font-family:monospace}"
                ".cmd.warn{background:#fbe3e3;border-color:#c44e52}"
                "ul{margin:0.3em 0}nav a{margin-right:1em}</style>\n"
                "</head><body>\n<h1>hostmem report</h1>\n")
        for cmd, crashed in cmds:
            f.write("<div class=\"box cmd%s\">Command: %s</div>\n"
                    % (" warn" if crashed else "", esc(cmd)))
        f.write(_trust_html(s, banner, warn))
        # R5: this page is the whole report (no link to a file beside it).
        f.write("<p>%s .. %s; hosts: %s; %s; %d hostmem events. The summary is at the end of "
                "this page; summary.json and summary.txt, written beside it, hold the "
                "same.</p>\n"
                % (esc(summary_mod.wall(s["time_span"]["start_ns"])),
                   esc(summary_mod.wall(s["time_span"]["end_ns"])),
                   esc(", ".join(s["hosts"])), summary_mod.plural(len(s["processes"]), "process",
                                                                  "processes"), s["events"]))
        f.write("<nav>%s<a href=\"#summary\">Summary</a></nav>\n"
                % "".join("<a href=\"#%s\">%s</a>" % (name.split(".")[0], esc(title))
                          for name, title, _ in images))
        for name, title, svg in images:
            f.write("<h2 id=\"%s\">%s</h2>\n%s"
                    % (name.split(".")[0], esc(title),
                       svg.replace("<svg ", "<svg class=\"plot\" role=\"img\" aria-label=\"%s\" "
                                   % esc(title), 1)))
            if name == "memory.svg":
                f.write(flame.section(s))  # R5, under the peak it explains: inline SVG
        f.write("<h2 id=\"summary\">Summary</h2>\n<pre>%s</pre>\n</body></html>\n" % esc(text))
    return index
