#!/usr/bin/python3
"""tracing_report.py OUT_DIR: the tables of run-tracing.sh.

Reads OUT_DIR/modes/<mode>.<round>.json (hostmem-bench --json) and
OUT_DIR/burst/<channel>.json, prints what tracing adds to each operation and
what a burst loses, and writes OUT_DIR/tracing.json.

Added cost of a mode = median over rounds of hostmem p50 in that mode minus
the same in mode "none".  The floors emit no events, so a mode that moved the
floors too says the machine drifted; the floor-normalised figure
((ratio_mode - ratio_none) * floor p50) is printed beside it as a check.
"""
import glob
import json
import os
import statistics
import sys

# T6: an event of a region operation costs at most this many bare
# one-field lttng-ust events (hostmem_bench:bare, same session, same run).
T6_MAX_RATIO = 1.5
# hostmem events one timed operation emits (the pair emits two).
EVENTS_PER_OP = {"reserve+release": 2}


def load_modes(out):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "modes", "*.json"))):
        mode = os.path.basename(path).split(".")[0]
        with open(path) as f:
            runs.setdefault(mode, []).append(json.load(f))
    return runs


def key(row):
    return (row["operation"], row["variant"], row["size"], row["threads"], row["regions"])


def size_name(n):
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return "%d%s" % (n >> shift, unit)
    return "-" if n == 0 else str(n)


def collect(runs):
    """{key: {mode: {"hm": [...], "fl": [...], "ratio": [...]}}}, primary floors only."""
    table = {}
    order = []
    for mode, docs in runs.items():
        for doc in docs:
            for row in doc["rows"]:
                if not row["primary"]:
                    continue
                k = key(row)
                if k not in table:
                    table[k] = {}
                    order.append(k)
                d = table[k].setdefault(mode, {"hm": [], "fl": [], "ratio": []})
                d["hm"].append(row["hostmem_p50_ns"])
                d["fl"].append(row["floor_p50_ns"])
                d["ratio"].append(row["ratio_p50"])
    return table, order


def modes_report(runs):
    table, order = collect(runs)
    rows = []
    print("Tracing cost per operation (p50 ns, median over rounds; added = mode - none)")
    hdr = "%-16s %-22s %5s %3s | %9s %9s %9s | %9s %9s %9s | %s" % (
        "operation", "variant", "size", "thr", "none", "disabled", "enabled",
        "+disabled", "+enabled", "+enab.norm", "target: T6, below")
    print(hdr)
    print("-" * len(hdr))
    for k in order:
        per = table[k]
        if "none" not in per:
            continue
        med = {m: statistics.median(v["hm"]) for m, v in per.items()}
        fl = statistics.median([x for v in per.values() for x in v["fl"]])
        ratio = {m: statistics.median(v["ratio"]) for m, v in per.items()}
        added = {m: med[m] - med["none"] for m in med if m != "none"}
        norm = {m: (ratio[m] - ratio["none"]) * fl for m in ratio if m != "none"}
        met = None  # judged per event against the bare one: the T6 tables below
        rows.append({"operation": k[0], "variant": k[1], "size": k[2], "threads": k[3],
                     "regions": k[4], "p50_ns": med, "added_ns": added,
                     "added_ns_floor_normalised": norm, "floor_p50_ns": fl,
                     "target_met": met})

        def f(d, m):
            return "%9.0f" % d[m] if m in d else "%9s" % "-"
        print("%-16s %-22s %5s %3d | %s %s %s | %s %s %s | %s" % (
            k[0], k[1][:22], size_name(k[2]), k[3], f(med, "none"), f(med, "disabled"),
            f(med, "enabled"), f(added, "disabled"), f(added, "enabled"), f(norm, "enabled"),
            "-" if met is None else ("ok" if met else "MISSED")))
    return rows


def t6_report(runs, rows):
    """Cost tracing adds per event of each operation over what it adds to the
    bare one-field event, measured in the same process and session.

    Per round: (op p50 enabled - op p50 none) / events per op, over (bare p50
    enabled - bare p50 none), the "none" figures being the medians over the
    rounds; the table gives the median ratio over the rounds and its range.
    Operations timed against an empty floor (the trace family) take the
    difference as it is; the others (region family, against a syscall) the
    floor-normalised one, so that drift of a shared machine cancels out.
    Only operations that do no syscall measure the event rather than the
    kernel's noise: the trace family's, and reserve+release of 64 KiB."""
    table, _ = collect(runs)
    bare_key = next((k for k in table if k[0] == "bare_event"), None)
    if bare_key is None or "enabled" not in table[bare_key] or "none" not in table[bare_key]:
        return None
    bare = table[bare_key]
    bare_none = statistics.median(bare["none"]["hm"])
    bare_added = [x - bare_none for x in bare["enabled"]["hm"]]
    print()
    print("T6: cost a session adds to one hostmem event / cost it adds to a bare one-field "
          "lttng-ust event (same process, same session; per round, median of rounds)")
    hdr = "%-16s %-16s %5s %3s | %10s %10s | %6s %13s | %s" % (
        "operation", "variant", "size", "ev", "added/ev", "bare", "ratio", "range",
        "target (<= %.1f)" % T6_MAX_RATIO)
    print(hdr)
    print("-" * len(hdr))
    out = {"bare_event_ns": statistics.median(bare_added), "max_ratio": T6_MAX_RATIO,
           "rows": []}
    for r in rows:
        k = (r["operation"], r["variant"], r["size"], r["threads"], r["regions"])
        if r["operation"] == "bare_event" or r["threads"] != 1 or r["regions"]:
            continue
        if r["variant"] != "one event" and r["operation"] not in EVENTS_PER_OP:
            continue  # a syscall's noise would drown the event
        per = table.get(k, {})
        if "enabled" not in per or "none" not in per:
            continue
        events = EVENTS_PER_OP.get(r["operation"], 1)
        empty_floor = r["floor_p50_ns"] <= 0 or r["variant"] == "one event"
        if empty_floor:
            none = statistics.median(per["none"]["hm"])
            added = [(x - none) / events for x in per["enabled"]["hm"]]
        else:
            rn = statistics.median(per["none"]["ratio"])
            added = [(x - rn) * f / events for x, f in zip(per["enabled"]["ratio"],
                                                             per["enabled"]["fl"])]
        ratios = [a / b for a, b in zip(added, bare_added) if b > 0]
        if not ratios:
            continue
        ratio = statistics.median(ratios)
        met = ratio <= T6_MAX_RATIO
        out["rows"].append({"operation": r["operation"], "variant": r["variant"],
                            "size": r["size"], "events_per_op": events,
                            "added_per_event_ns": statistics.median(added),
                            "bare_event_ns": statistics.median(bare_added), "ratio": ratio,
                            "ratio_min": min(ratios), "ratio_max": max(ratios),
                            "target_met": met})
        print("%-16s %-16s %5s %3d | %10.0f %10.0f | %6.2f %13s | %s" % (
            r["operation"], r["variant"][:16], size_name(r["size"]), events,
            statistics.median(added), statistics.median(bare_added), ratio,
            "%.2f-%.2f" % (min(ratios), max(ratios)), "ok" if met else "MISSED"))
    return out


def t6_side_by_side(runs):
    """T6 with the bare event where the region events are: region_pair times a
    reserve and its release as one operation, alone and with a bare event
    after each call.  Per round, from the same "enabled" run:

        region event = (pair enabled - pair none) / 2
        bare event   = ((pair+bare enabled - pair enabled)
                        - (pair+bare none - pair none)) / 2

    ("none": medians over the rounds).  The bare event costs more among the
    manager's work than in a loop of its own; this compares the two events
    in the same place."""
    table, _ = collect(runs)
    pk = next((k for k in table if k[0] == "region_pair" and k[1] == "2 region events"), None)
    bk = next((k for k in table if k[0] == "region_pair" and k[1] == "+ 2 bare events"), None)
    if pk is None or bk is None:
        return None
    p, b = table[pk], table[bk]
    if not all(m in d for d in (p, b) for m in ("none", "enabled")):
        return None
    p_none = statistics.median(p["none"]["hm"])
    b_none = statistics.median(b["none"]["hm"])
    region = [(x - p_none) / 2 for x in p["enabled"]["hm"]]
    bare = [((y - x) - (b_none - p_none)) / 2 for x, y in zip(p["enabled"]["hm"], b["enabled"]["hm"])]
    ratios = [r / q for r, q in zip(region, bare) if q > 0]
    if not ratios:
        return None
    ratio = statistics.median(ratios)
    met = ratio <= T6_MAX_RATIO
    print()
    print("T6 side by side: a region event / a bare one-field event fired where the region "
          "events are (reserve, release of 64K; per round, median of rounds)")
    print("  region event %.0f ns, bare event there %.0f ns (in a loop of its own: see above): "
          "ratio %.2f (%.2f-%.2f), target <= %.1f: %s" % (
              statistics.median(region), statistics.median(bare), ratio, min(ratios),
              max(ratios), T6_MAX_RATIO, "ok" if met else "MISSED"))
    return {"region_event_ns": statistics.median(region),
            "bare_event_here_ns": statistics.median(bare), "ratio": ratio,
            "ratio_min": min(ratios), "ratio_max": max(ratios), "target_met": met}


def burst_report(out):
    results = []
    for path in sorted(glob.glob(os.path.join(out, "burst", "*.json"))):
        if path.endswith(".bench.json"):
            continue
        with open(path) as f:
            results.append(json.load(f))
    if not results:
        return results
    print()
    print("Events lost in a burst (one process, back to back)")
    hdr = "%-9s %-14s %10s %10s %10s %10s %8s %12s" % (
        "channel", "sub-buffers", "emitted", "recorded", "disc.lttng", "disc.bt2", "lost %",
        "events/s")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        b = r["bench"]["burst"]
        emitted = b["events_emitted"]
        lost = max(r["discarded_lttng"], r["discarded_babeltrace"], emitted - r["recorded"], 0)
        r["lost"] = lost
        r["lost_percent"] = 100.0 * lost / emitted if emitted else 0.0
        r["accounted"] = r["recorded"] + max(r["discarded_lttng"], r["discarded_babeltrace"])
        print("%-9s %-14s %10d %10d %10d %10d %8.2f %12.0f" % (
            r["channel"], "%d x %d KiB" % (r["num_subbuf"], r["subbuf_size"] // 1024), emitted,
            r["recorded"], r["discarded_lttng"], r["discarded_babeltrace"], r["lost_percent"],
            b["events_per_second"]))
    return results


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out = sys.argv[1]
    runs = load_modes(out)
    modes = modes_report(runs) if runs else []
    doc = {"modes": modes, "t6": t6_report(runs, modes) if runs else None,
           "t6_side_by_side": t6_side_by_side(runs) if runs else None,
           "burst": burst_report(out)}
    with open(os.path.join(out, "tracing.json"), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
