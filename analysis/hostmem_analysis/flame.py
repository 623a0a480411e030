"""The flame graph of committed bytes at the peak (R5), as inline SVG.

One graph per process (the first MAX_GRAPHS), built from the summary's
``peak.by_stack``: the bottom box is everything the process had committed at
its peak; above it, the host's outermost callers; each box is a function on
the way to the reserves, as wide as the committed bytes of the regions
reserved through it; the top of each tower is the call that reserved.
Boxes that group the smaller stacks ("(other ...)") are drawn in blue, as
are frames of hostmem's own in traces of versions that recorded them (the
heap's regions now start at the host's call).  Every box
has a tooltip (SVG <title>) with the frame, its bytes and its share, so the
page needs no script and fetches nothing: it opens offline as it is.
"""

import html
import zlib

from . import summary as summary_mod

MAX_GRAPHS = 4
WIDTH = 1160          # viewBox units; the SVG scales to the page's width
ROW = 18              # height of one frame
CHAR = 6.6            # width of one character of the 11px label font
MIN_LABEL = 3         # characters: narrower boxes carry no label


def _function(frame):
    """The box a frame goes in: its function (the call's file:line goes to the tooltip)."""
    return frame.split(" (", 1)[0] if not frame.startswith("0x") else frame


def tree(rows, total=None):
    """The call tree of by_stack rows, outermost frame at the root's children.

    Frames of one function under the same parent share a box, as in any flame
    graph; the calls (file:line) it made are listed in the box's tooltip."""
    root = {"name": "all", "bytes": 0, "children": {}, "calls": {}}
    for e in rows:
        b = e["committed_bytes"]
        if b <= 0:
            continue
        root["bytes"] += b
        node = root
        for frame in reversed(e["stack"] or ["?"]):
            fn = _function(frame)
            ch = node["children"].get(fn)
            if ch is None:
                ch = node["children"][fn] = {"name": fn, "bytes": 0, "children": {}, "calls": {}}
            ch["bytes"] += b
            ch["calls"][frame] = ch["calls"].get(frame, 0) + b
            node = ch
    if total is not None and total > root["bytes"]:
        # Stacks beyond the summary's list: a box of their own, so widths stay true.
        rest = total - root["bytes"]
        root["children"]["(other stacks)"] = {"name": "(other stacks)", "bytes": rest,
                                              "children": {}, "calls": {}}
        root["bytes"] = total
    return root


def _depth(node):
    return 1 + max((_depth(c) for c in node["children"].values()), default=0)


def _colour(name):
    """Warm hues for the host, blue for grouped boxes (and hostmem's own frames in
    older traces); stable per name."""
    h = zlib.crc32(name.encode())
    if name.startswith(("hostmem_", "hostmem__", "heap_", "(other")):
        return "hsl(%d,55%%,%d%%)" % (205 + h % 20, 62 + (h >> 8) % 12)
    return "hsl(%d,80%%,%d%%)" % (10 + h % 40, 58 + (h >> 8) % 12)


def svg(root, title):
    """One flame graph as an <svg> element (a string)."""
    levels = _depth(root)
    height = levels * ROW + 4
    total = root["bytes"] or 1
    out = ['<svg class="flame" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" '
           'width="100%%" role="img" aria-label="%s" '
           'style="font-family:monospace;font-size:11px">' % (WIDTH, height, html.escape(title))]

    def box(node, x, w, level):
        y = height - (level + 1) * ROW
        share = 100.0 * node["bytes"] / total
        calls = sorted(node["calls"].items(), key=lambda kv: (-kv[1], kv[0]))
        where = "\n".join("%s: %s" % (f, summary_mod.human_bytes(n)) for f, n in calls[:6])
        if len(calls) > 6:
            where += "\n... %d more calls" % (len(calls) - 6)
        tip = "%s\n%s, %.1f %% of the committed bytes at the peak" % (
            where or node["name"], summary_mod.human_bytes(node["bytes"]), share)
        if level == 0:
            tip = "all stacks\n%s committed at the peak" % summary_mod.human_bytes(node["bytes"])
        label = ("%s  %s" % (node["name"], summary_mod.human_bytes(node["bytes"])) if level
                 else "all: %s committed at the peak" % summary_mod.human_bytes(node["bytes"]))
        fill = "#e8e8e8" if level == 0 else _colour(node["name"])
        out.append('<g><title>%s</title><rect x="%.2f" y="%d" width="%.2f" height="%d" '
                   'fill="%s" stroke="#fff" stroke-width="0.5" rx="1"/>'
                   % (html.escape(tip), x, y, max(w, 0.5), ROW - 1, fill))
        room = int((w - 6) / CHAR)
        if room >= MIN_LABEL:
            text = label if len(label) <= room else label[:max(1, room - 2)] + ".."
            out.append('<text x="%.2f" y="%d">%s</text>' % (x + 3, y + ROW - 5, html.escape(text)))
        out.append("</g>")
        cx = x
        kids = sorted(node["children"].values(), key=lambda c: (-c["bytes"], c["name"]))
        for c in kids:
            cw = w * c["bytes"] / node["bytes"] if node["bytes"] else 0
            box(c, cx, cw, level + 1)
            cx += cw

    box(root, 0.0, float(WIDTH), 0)
    out.append("</svg>")
    return "\n".join(out)


def section(s):
    """The report's HTML section: one flame graph per process with a peak."""
    procs = [p for p in s.get("processes", []) if p.get("peak", {}).get("by_stack")]
    parts = ['<h2 id="flame">Who holds memory at the peak</h2>']
    if not procs:
        parts.append("<p>No committed bytes at any peak.</p>")
        return "\n".join(parts) + "\n"
    parts.append(
        "<p>Committed bytes at each process's peak, by the call stack that reserved the "
        "region holding them (docs/analysis.md, R5). Read from the bottom up: the "
        "bottom bar is all of it, each bar above is a function on the way to the reserve, "
        "as wide as the bytes reserved through it; the top of each tower is the call that "
        "reserved. Blue boxes group the smaller stacks. Hover over a "
        "box for its bytes.%s</p>"
        % ("" if any(len(e["stack"]) > 1 for p in procs for e in p["peak"]["by_stack"])
           else " <b>Only the caller of each reserve is known:</b> record with "
                "<code>HOSTMEM_STACKS=16</code> for whole stacks."))
    for p in procs[:MAX_GRAPHS]:
        root = tree(p["peak"]["by_stack"], p["peak"].get("committed_bytes"))
        title = "%s at its peak: %s committed" % (p.get("label", "?"),
                                                   summary_mod.human_bytes(root["bytes"]))
        parts.append("<h3>%s</h3>" % html.escape(title))
        parts.append(svg(root, title))
    if len(procs) > MAX_GRAPHS:
        parts.append("<p>%d more processes: see summary.json (peak.by_stack).</p>"
                     % (len(procs) - MAX_GRAPHS))
    return "\n".join(parts) + "\n"
