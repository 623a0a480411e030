#!/usr/bin/python3
"""tracing_report.py OUT_DIR: the tables of run-tracing.sh.

Reads OUT_DIR/modes/<mode>.<round>.json (hostmem-bench --json) and
OUT_DIR/burst/<channel>.json, prints what tracing adds to each operation and
what a burst loses, and writes OUT_DIR/tracing.json.

Added cost of a mode = median over rounds of hostmem p50 in that mode minus
the same in mode "none".  The floors emit no events, so a mode that moved the
floors too says the machine drifted; the floor-normalised figure
((ratio_mode - ratio_none) * floor p50) is printed beside it as a check.

T6 is taken from the runs with a session alone: each operation of the trace
family is timed there against the same call untraced and against the bare
event, in the same process (t6_report).
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
EVENTS_PER_OP = {"region_pair": 2}
# The floors of the trace family's operation cases (bench_trace.c).
EMPTY, UNTRACED, BARE, PAIR_BARE = ("empty", "hostmem untraced", "bare event",
                                    "untraced + 2 bare events")


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


def sides(runs, mode):
    """{key: [{"hostmem": p50, <floor label>: p50, ...} per round]} of one mode:
    every side of a case, as timed in the same process."""
    table = {}
    for doc in runs.get(mode, []):
        per = {}
        for row in doc["rows"]:
            d = per.setdefault(key(row), {"hostmem": row["hostmem_p50_ns"]})
            d[row["floor"]] = row["floor_p50_ns"]
        for k, d in per.items():
            table.setdefault(k, []).append(d)
    return table


def ratio_stats(pairs):
    """[(cost, yardstick)] per round -> median cost, yardstick, ratio, range."""
    pairs = [(a, b) for a, b in pairs if b > 0]
    if not pairs:
        return None
    ratios = [a / b for a, b in pairs]
    return {"cost": statistics.median(a for a, _ in pairs),
            "yardstick": statistics.median(b for _, b in pairs),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "rounds": len(ratios)}


def t6_report(table):
    """T6, from the runs with a session ("enabled"), in each process: what one
    hostmem event costs over what the bare one-field event costs.

    Per round and operation, from sides timed batch by batch in one process
    (bench_trace.c):

        event = (operation - operation untraced) / events per operation
        bare  = bare event in a loop of its own - empty operation

    The table gives the median ratio over the rounds and its range.
    `table`: sides(runs, "enabled")."""
    print()
    print("T6: cost of one hostmem event / cost of a bare one-field lttng-ust event in a loop "
          "of its own (both timed in the same process, batch by batch; median of rounds)")
    hdr = "%-16s %-16s %5s %3s | %10s %10s | %6s %13s | %s" % (
        "operation", "variant", "size", "ev", "event ns", "bare ns", "ratio", "range",
        "target (<= %.1f)" % T6_MAX_RATIO)
    print(hdr)
    print("-" * len(hdr))
    out = {"max_ratio": T6_MAX_RATIO, "method": "in-process: (operation - untraced) / events, "
           "over (bare event - empty)", "rows": []}
    for k, rounds in table.items():
        rounds = [d for d in rounds if {UNTRACED, BARE, EMPTY} <= d.keys()]
        if not rounds:
            continue
        events = EVENTS_PER_OP.get(k[0], 1)
        st = ratio_stats([((d["hostmem"] - d[UNTRACED]) / events, d[BARE] - d[EMPTY])
                          for d in rounds])
        if st is None:
            continue
        met = st["ratio"] <= T6_MAX_RATIO
        out["rows"].append({"operation": k[0], "variant": k[1], "size": k[2],
                            "events_per_op": events, "event_ns": st["cost"],
                            "bare_event_ns": st["yardstick"], "ratio": st["ratio"],
                            "ratio_min": st["ratio_min"], "ratio_max": st["ratio_max"],
                            "rounds": st["rounds"], "target_met": met})
        print("%-16s %-16s %5s %3d | %10.0f %10.0f | %6.2f %13s | %s" % (
            k[0], k[1][:16], size_name(k[2]), events, st["cost"], st["yardstick"], st["ratio"],
            "%.2f-%.2f" % (st["ratio_min"], st["ratio_max"]), "ok" if met else "MISSED"))
    return out if out["rows"] else None


def t6_side_by_side(table):
    """T6 with the bare event where the region events are.  Per round, from
    the region_pair case of the run with a session (one process):

        region event = (pair - pair untraced) / 2
        bare event   = (untraced pair + 2 bare events - pair untraced) / 2

    A bare event costs more among the manager's work than in a loop of its
    own; this compares the two events in the same place.  `table`:
    sides(runs, "enabled")."""
    k = next((k for k in table if k[0] == "region_pair"), None)
    if k is None:
        return None
    rounds = [d for d in table[k] if {UNTRACED, PAIR_BARE} <= d.keys()]
    st = ratio_stats([((d["hostmem"] - d[UNTRACED]) / 2, (d[PAIR_BARE] - d[UNTRACED]) / 2)
                      for d in rounds])
    if st is None:
        return None
    met = st["ratio"] <= T6_MAX_RATIO
    print()
    print("T6 side by side: a region event / a bare one-field event fired where the region "
          "events are (reserve, release of 64K; same process; median of rounds)")
    print("  region event %.0f ns, bare event there %.0f ns: ratio %.2f (%.2f-%.2f), "
          "target <= %.1f: %s" % (st["cost"], st["yardstick"], st["ratio"], st["ratio_min"],
                                  st["ratio_max"], T6_MAX_RATIO, "ok" if met else "MISSED"))
    return {"region_event_ns": st["cost"], "bare_event_here_ns": st["yardstick"],
            "ratio": st["ratio"], "ratio_min": st["ratio_min"], "ratio_max": st["ratio_max"],
            "rounds": st["rounds"], "target_met": met}


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
    enabled = sides(runs, "enabled")
    doc = {"modes": modes, "t6": t6_report(enabled) if runs else None,
           "t6_side_by_side": t6_side_by_side(enabled) if runs else None,
           "burst": burst_report(out)}
    with open(os.path.join(out, "tracing.json"), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
