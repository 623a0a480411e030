"""The figures of a replayed model, as one JSON-able dict and as text.

The dict's top level is every process merged ("all") and holds the keys of
R1; ``processes`` holds the same figures for each process apart.
"""

import datetime
import math

from .model import DECISIONS, LEVELS, REPORTED_OPS, STATES
from .symbols import Symbolizer

TOP_SITES = 10
TOP_STACKS = 100  # entries per by_stack list in the JSON (the text shows fewer)
TEXT_STACKS = 5
TEXT_FRAMES = 8
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    n = len(sorted_values)
    if n == 0:
        return 0
    # round(): 99.9 / 100 * 1000 is 999.0000000000001 in floating point
    k = max(0, min(n - 1, math.ceil(round(p * n / 100.0, 6)) - 1))
    return sorted_values[k]


def _latency(hist):
    """Percentiles of a mergeable histogram (hist.py): exact below 1 us,
    within 0.1 % above."""
    got = hist.percentiles([p for _, p in PERCENTILES])
    out = {name: got[p] for name, p in PERCENTILES}
    out["max"] = hist.max
    return out


def _temp_sites(temporary, sites):
    """Temporary regions by resolved call site, biggest first."""
    by = {}
    for caller, (n, b) in temporary.items():
        site = sites.get(caller, "?")
        e = by.setdefault(site, {"site": site, "regions": 0, "bytes": 0, "committed_bytes": 0})
        e["regions"] += n
        e["bytes"] += b
    return sorted(by.values(), key=lambda e: (-e["bytes"], -e["regions"], e["site"]))


def _sites(entries, key_bytes):
    """Group (site, size, committed) entries by site, biggest first."""
    by = {}
    for site, size, committed in entries:
        e = by.setdefault(site, {"site": site, "regions": 0, key_bytes: 0, "committed_bytes": 0})
        e["regions"] += 1
        e[key_bytes] += size
        e["committed_bytes"] += committed
    return sorted(by.values(), key=lambda e: (-e[key_bytes], -e["regions"], e["site"]))


def _win32_json(w):
    """W3: write-watch calls and guard hits."""
    return {"write_watch": {k: w[k] for k in ("reads", "resets", "pages", "reset_pages")},
            "guard_hits": w["guard_hits"]}


def _heap_json(hs, sites, peak_committed, end_committed):
    """Heap figures (H4): leaks by call site and by file:line, share of committed."""
    by_site, by_line = {}, {}
    for b in hs.leaks:
        site = sites.get(b.caller, "?")
        e = by_site.setdefault(site, {"site": site, "blocks": 0, "bytes": 0})
        e["blocks"] += 1
        e["bytes"] += b.size
        if b.file:
            where = "%s:%d" % (b.file, b.line)
            e = by_line.setdefault(where, {"file": b.file, "line": b.line, "site": site,
                                           "blocks": 0, "bytes": 0})
            e["blocks"] += 1
            e["bytes"] += b.size

    def top(d):
        return sorted(d.values(), key=lambda e: (-e["bytes"], -e["blocks"], str(e.get("site"))))[:TOP_SITES]

    def share(part, whole):
        return round(part / whole, 4) if whole else 0.0

    return {"heaps": hs.heaps, "allocs": hs.allocs, "frees": hs.frees,
            "alloc_bytes": hs.alloc_bytes, "unknown_frees": hs.unknown_frees,
            "leaks": {"blocks": len(hs.leaks), "bytes": sum(b.size for b in hs.leaks),
                      "by_site": top(by_site), "by_file_line": top(by_line)},
            # T8: blocks a process killed by a signal still held (not leaks)
            "live_at_crash": {"blocks": len(hs.live_at_crash),
                              "bytes": sum(b.size for b in hs.live_at_crash)},
            "committed_bytes": hs.committed,
            "peak_committed_bytes": hs.peak_committed,
            "committed_at_peak_bytes": hs.committed_at_peak,
            "share_of_committed": {"at_peak": share(hs.committed_at_peak, peak_committed),
                                   "at_end": share(hs.committed, end_committed)}}


def _stats_json(st, sites, temporary_ns):
    """The figures of one Stats (a process or "all").  `sites`: caller -> str."""
    ops = {}
    for op in REPORTED_OPS + ("query",):
        o = st.ops[op]
        if op == "query" and not o.count:
            continue
        ops[op] = {"count": o.count, "failed": o.failed, "bytes": o.bytes,
                   "latency_ns": _latency(o.latencies)}
    by_hr, by_level, by_reason, by_op = {}, {}, {}, {}
    detail = []
    for (op, level, hr, reason), n in sorted(st.failures.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        by_hr[hr] = by_hr.get(hr, 0) + n
        by_level[level] = by_level.get(level, 0) + n
        by_reason[reason] = by_reason.get(reason, 0) + n
        by_op[op] = by_op.get(op, 0) + n
        detail.append({"op": op, "level": level, "hresult": hr, "reason": reason, "count": n})
    for lv in LEVELS:
        by_level.setdefault(lv, 0)
    dec = {d: 0 for d in DECISIONS}
    dec_by_level = {}
    dec_detail = []
    for (res, level, d), n in sorted(st.decisions.items(), key=lambda kv: str(kv[0])):
        dec[d] = dec.get(d, 0) + n
        dec_by_level.setdefault(level, {x: 0 for x in DECISIONS})
        dec_by_level[level][d] = dec_by_level[level].get(d, 0) + n
        dec_detail.append({"resource": res, "level": level, "decision": d, "count": n})
    dec["by_level"] = dec_by_level
    dec["detail"] = dec_detail
    dec["waited_ns"] = st.decision_wait_ns

    # A leak is a region the host never released: still reserved when the
    # trace ends, or still live when its manager was destroyed (which freed
    # it; manager_destroy reports exactly these).
    leaks = [(sites.get(lk.caller, "?") if lk.site is None else lk.site, lk.size, lk.committed)
             for lk in st.leaks + st.leaks_at_destroy]
    at_destroy = [(sites.get(lk.caller, "?") if lk.site is None else lk.site, lk.size, lk.committed)
                  for lk in st.leaks_at_destroy]
    crash = [(sites.get(lk.caller, "?") if lk.site is None else lk.site, lk.size, lk.committed)
             for lk in st.live_at_crash]
    temp_regions = sum(n for n, _ in st.temporary.values())
    temp_bytes = sum(b for _, b in st.temporary.values())
    life = st.temporary_life.percentiles([50])
    hist = {}
    for b, n in sorted(st.size_hist.items()):
        lo = 0 if b == 0 else 1 << (b - 1)
        hist[str(lo)] = n
    span = (st.last_ts - st.first_ts) if st.first_ts is not None else 0
    return {
        "events": st.events,
        "events_by_name": dict(sorted(st.events_by_name.items())),
        "time_span": {"start_ns": st.first_ts, "end_ns": st.last_ts, "duration_ns": span},
        "managers": st.managers,
        "ops": ops,
        "failures": {"total": sum(st.failures.values()), "by_hresult": by_hr,
                     "by_level": by_level, "by_reason": by_reason, "by_op": by_op,
                     "detail": detail},
        "critical_decisions": dec,
        "memory_state_ns": {s: st.state_ns.get(s, 0) for s in STATES},
        "peak_committed_bytes": st.peak_committed,
        "peak_committed_ns": st.peak_committed_ts,
        "peak_reserved_bytes": st.peak_reserved,
        "peak_reserved_ns": st.peak_reserved_ts,
        "end_committed_bytes": st.committed,
        "end_reserved_bytes": st.reserved,
        "leaks": {"regions": len(leaks), "reserved_bytes": sum(x[1] for x in leaks),
                  "committed_bytes": sum(x[2] for x in leaks),
                  "from_statedump": sum(1 for lk in st.leaks + st.leaks_at_destroy if lk.from_statedump),
                  "by_caller": _sites(leaks, "reserved_bytes")[:TOP_SITES],
                  "at_destroy": {"regions": len(at_destroy),
                                 "reserved_bytes": sum(x[1] for x in at_destroy),
                                 "committed_bytes": sum(x[2] for x in at_destroy)}},
        # T8: what a process killed by a signal still held (not leaks).
        "live_at_crash": {"regions": len(crash), "reserved_bytes": sum(x[1] for x in crash),
                          "committed_bytes": sum(x[2] for x in crash),
                          "by_caller": _sites(crash, "reserved_bytes")[:TOP_SITES]},
        "temporary": {"threshold_ns": temporary_ns, "regions": temp_regions,
                      "bytes": temp_bytes,
                      "of_released": st.lifetimes,
                      "lifetime_ns": {"p50": life[50], "max": st.temporary_life.max},
                      "by_caller": _temp_sites(st.temporary, sites)[:TOP_SITES]},
        "reserve_size_histogram": hist,
        "address_space": [{"action": a, "hresult": h, "count": n}
                          for (a, h), n in sorted(st.address_space.items(), key=str)],
        "untracked_ops": st.untracked,
        "heap": _heap_json(st.heap, sites, st.peak_committed, st.committed),
        "win32": _win32_json(st.win32),
    }


def plural(n, word, words=None):
    """"1 region", "2 regions"."""
    return "%d %s" % (n, word if n == 1 else (words or word + "s"))


def trust_of(model, procs, input_trust=None):
    """T8: complete, or the list of what failed."""
    reasons = []
    if model.discarded_events:
        reasons.append("%s discarded by the tracer (ring buffer full)"
                       % plural(model.discarded_events, "event"))
    if model.discarded_packets:
        reasons.append("%s lost" % plural(model.discarded_packets, "packet"))
    gaps = sum(j["seq_gaps"] for _, j, _ in procs)
    if gaps:
        reasons.append("%s missing by seq gaps" % plural(gaps, "event"))
    t = input_trust or {}
    reasons.extend(t.get("damage", []))
    reasons.extend(t.get("stopped", []))
    for p, j, _ in procs:
        for mgr, told, seen in p.destroy_mismatch:
            reasons.append("%s: manager 0x%x: destroy found %s live, the trace shows %d "
                           "(events of that manager were lost)"
                           % (p.label(), mgr or 0, plural(told, "region"), seen))
        live = len(p.managers_by_addr)
        if live and p.crash_signal:
            reasons.append("%s: %s never destroyed: the process was killed by %s (what it held "
                           "is live at the crash, not leaked)"
                           % (p.label(), plural(live, "manager"), p.crash_signal))
        elif live:
            reasons.append("%s: %s never destroyed (the process exited without destroying "
                           "%s, or the trace ends before it did)"
                           % (p.label(), plural(live, "manager"), "them" if live > 1 else "it"))
    return {"complete": not reasons, "reasons": reasons,
            "duplicates": list(t.get("duplicates", []))}


# -- who holds memory (R5) ---------------------------------------------------

def _stack_rows(table, names, reserved=None):
    """by_stack entries of one process: `table` stack -> (committed, regions)."""
    rows = []
    for stack, (b, n) in table.items():
        e = {"stack": [names.get(a, "0x%x" % a) for a in stack], "committed_bytes": b,
             "regions": n}
        if reserved is not None:
            e["reserved_bytes"] = reserved.get(stack, 0)
        rows.append(e)
    return rows


def _stack_merge(lists):
    """Entries of several processes summed by symbolic stack, largest first."""
    by = {}
    for rows in lists:
        for e in rows:
            key = tuple(e["stack"])
            t = by.get(key)
            if t is None:
                by[key] = dict(e)
            else:
                for k in ("committed_bytes", "regions", "reserved_bytes"):
                    if k in e:
                        t[k] = t.get(k, 0) + e[k]
    return sorted(by.values(), key=lambda e: (-e["committed_bytes"], -e.get("reserved_bytes", 0),
                                              -e["regions"], e["stack"]))


def _stacks_json(p, sym):
    """peak.by_stack, end.by_stack and leaks.by_stack of one process (all entries)."""
    book = p.stacks
    leaked, leaked_reserved = {}, {}
    for lk in p.leaks + p.leaks_at_destroy:
        st = lk.stack or ((lk.caller,) if lk.caller else ())
        e = leaked.setdefault(st, [0, 0])
        e[0] += lk.committed
        e[1] += 1
        leaked_reserved[st] = leaked_reserved.get(st, 0) + lk.size
    end = book.table()
    addrs = set()
    for t in (book.peak, end, leaked):
        for st in t:
            addrs.update(st)
    names = sym.frames(addrs)
    return {"peak": _stack_merge([_stack_rows(book.peak, names)]),
            "end": _stack_merge([_stack_rows(end, names)]),
            "leaks": _stack_merge([_stack_rows(leaked, names, leaked_reserved)])}


def build(model, trust=None, command=None):
    """The summary dict of a finished model; `trust`: reader.new_trust() filled by read();
    `command`: what hostmem-profile knows of the command it ran (its argv, pid,
    host, and exit_status or signal), or a list of them (one per trace that
    has one: each applies to its own process, by host and pid), or None."""
    model.finish()
    if isinstance(command, list):
        commands = [c for c in command if c]
    else:
        commands = [command] if command else []
    for c in commands:
        if c.get("signal") is not None and c.get("pid") is not None:
            model.mark_crashed(c["pid"], c.get("signal_name") or "signal %d" % c["signal"],
                               c.get("host"))
    procs = []
    for p in model.sorted_processes():
        if not p.events:
            continue
        callers = {lk.caller for lk in p.leaks} | {lk.caller for lk in p.leaks_at_destroy}
        callers |= {lk.caller for lk in p.live_at_crash}
        callers |= set(p.temporary)
        callers |= {b.caller for b in p.heap.leaks}
        callers |= {b.caller for b in p.heap.live_at_crash}
        sym = Symbolizer(p.objects)
        sites = sym.resolve(callers)
        for lk in p.leaks + p.leaks_at_destroy + p.live_at_crash:
            lk.site = sites.get(lk.caller, "?")
        j = _stats_json(p, sites, model.temporary_ns)
        stacks = _stacks_json(p, sym)
        j["peak"] = {"committed_bytes": p.peak_committed, "ns": p.peak_committed_ts,
                     "by_stack": stacks["peak"][:TOP_STACKS]}
        j["end"] = {"committed_bytes": p.committed, "by_stack": stacks["end"][:TOP_STACKS]}
        j["leaks"]["by_stack"] = stacks["leaks"][:TOP_STACKS]
        p.stack_tables = stacks  # every entry, for the flame graph (report.py)
        j.update({"host": p.host, "pid": p.pid, "procname": p.procname, "label": p.label(),
                  "discarded_events": p.discarded_events,
                  "discarded_packets": p.discarded_packets,
                  "seq_gaps": p.seq_gaps,
                  "statedump_objects": len(p.objects)})
        procs.append((p, j, sites))
    all_sites = {}
    for p, j, sites in procs:
        for c, s in sites.items():
            all_sites.setdefault(c, s)
    # Temporary regions of "all" are grouped by resolved site, not address.
    out = _stats_json(model.all, {}, model.temporary_ns)
    by = {}
    for p, j, sites in procs:
        for e in _temp_sites(p.temporary, sites):
            t = by.setdefault(e["site"], dict(e, regions=0, bytes=0))
            t["regions"] += e["regions"]
            t["bytes"] += e["bytes"]
    out["temporary"]["by_caller"] = sorted(by.values(), key=lambda e: (-e["bytes"], -e["regions"],
                                                                       e["site"]))[:TOP_SITES]
    out["heap"] = _heap_json(model.all.heap, all_sites, model.all.peak_committed, model.all.committed)
    # R5: each process at its own peak, summed by symbolic stack.
    out["peak"] = {"committed_bytes": model.all.peak_committed, "ns": model.all.peak_committed_ts,
                   "by_stack": _stack_merge([p.stack_tables["peak"] for p, _, _ in procs])[:TOP_STACKS]}
    out["end"] = {"committed_bytes": model.all.committed,
                  "by_stack": _stack_merge([p.stack_tables["end"] for p, _, _ in procs])[:TOP_STACKS]}
    out["leaks"]["by_stack"] = _stack_merge([p.stack_tables["leaks"] for p, _, _ in procs])[:TOP_STACKS]
    out["win32"] = _win32_json(model.all.win32)
    out.update({
        "discarded_events": model.discarded_events,
        "discarded_packets": model.discarded_packets,
        "seq_gaps": sum(j["seq_gaps"] for _, j, _ in procs),
        "hosts": sorted({p.host or "?" for p, _, _ in procs}),
        "trust": trust_of(model, procs, trust),
        "command": commands[0] if commands else None,
        "commands": commands,
        "processes": [j for _, j, _ in procs],
    })
    return out


# -- text ------------------------------------------------------------------

def human_bytes(n):
    if n is None:
        return "-"
    n = int(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


def human_ns(ns):
    if ns is None:
        return "-"
    if ns < 1000:
        return "%d ns" % ns
    if ns < 1000000:
        return "%.1f us" % (ns / 1e3)
    if ns < 1000000000:
        return "%.1f ms" % (ns / 1e6)
    return "%.2f s" % (ns / 1e9)


def wall(ns):
    if ns is None:
        return "-"
    t = datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def clock(ns):
    """Time of day of an instant, to the ms (the date is in the time span)."""
    return wall(ns)[11:23] if ns is not None else "-"


def wrap(text, indent="  ", width=100):
    """A long line of prose as lines of at most `width` characters."""
    import textwrap
    return "\n".join(textwrap.wrap(text, width=width, subsequent_indent=indent,
                                    break_on_hyphens=False, break_long_words=False))


def table(headers, rows, indent="  "):
    """Columns: text left, numbers right."""
    rows = [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    numeric = [all(_is_num(r[i]) for r in rows) if rows else False for i in range(len(headers))]

    def fmt(r):
        return indent + "  ".join((c.rjust(w) if numeric[i] else c.ljust(w))
                                  for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    lines = [fmt(headers), indent + "  ".join("-" * w for w in widths)]
    lines.extend(fmt(r) for r in rows)
    return "\n".join(lines)


def _is_num(s):
    return s in ("", "-") or s[:1].isdigit()


def _rows(summary):
    """(label, figures) per process, then "all" when there are several."""
    procs = summary["processes"]
    rows = [(p["label"], p) for p in procs]
    if len(procs) != 1:
        rows.append(("all", summary))
    return rows


def trust_explanation(s):
    """What an incomplete verdict means for the figures, in one paragraph ("" when complete)."""
    t = s.get("trust")
    if t is None or t["complete"]:
        return ""
    reasons = t["reasons"]
    if all("never destroyed" in r for r in reasons):
        crashed = any("killed by" in r for r in reasons)
        return ("Nothing shows a loss (no discarded events, no gaps in seq, whole packets): the "
                "figures are exact for what was recorded.  Regions still reserved at the end are "
                + ("live at the crash (listed apart), not leaks." if crashed else
                   "counted as leaks."))
    out = ("Lower bounds: event and operation counts, failures, bytes, critical decisions, "
           "temporary regions.  Peaks are the highest totals the kept events carried (the true "
           "peak may be higher).  Leaks may include regions whose release was lost.")
    if any("discarded by the tracer" in r or r.split(" ", 1)[-1] in ("packet lost", "packets lost")
           for r in reasons):
        out += "  Record with larger sub-buffers (hostmem-profile uses 8 x 4 MiB per CPU)."
    return out


def trust_banner(s):
    """The verdict as text lines of at most 100 characters: the first reason on the
    verdict's line, each other on its own, then what it means."""
    t = s.get("trust")
    if t is None or t["complete"]:
        return ("Trust: complete. No discarded events, no lost packets, no gaps in seq, whole\n"
                "  packets, every manager closed: every figure below is exact.")
    reasons = t["reasons"]
    lines = []
    for i, r in enumerate(reasons):
        text = ("WARNING: INCOMPLETE TRACE: " if i == 0 else "  ") + r
        lines.append(wrap(text + (";" if i + 1 < len(reasons) else "."), indent="    "))
    lines.append(wrap("  " + trust_explanation(s)))
    return "\n".join(lines)


def command_line(c):
    """"COMMAND ARGS (pid N): exited with status 0", from a summary's `command`."""
    if not c:
        return None
    import shlex
    argv = " ".join(shlex.quote(a) for a in c.get("argv") or [])
    pid = " (pid %d)" % c["pid"] if c.get("pid") is not None else ""
    if c.get("signal") is not None:
        how = "killed by signal %d (%s)" % (c["signal"], c.get("signal_name") or "?")
    elif c.get("exit_status") is not None:
        how = "exited with status %d" % c["exit_status"]
    else:
        how = "exit unknown"
    return "%s%s: %s" % (argv, pid, how)


def _format_stack_list(w, title, rows, key="committed_bytes"):
    w("  " + title)
    if not rows:
        w("    none")
        return
    for e in rows[:TEXT_STACKS]:
        extra = ""
        if "reserved_bytes" in e:
            extra = ", %s reserved" % human_bytes(e["reserved_bytes"])
        w("    %s committed in %d region%s%s" % (human_bytes(e[key]), e["regions"],
                                               "" if e["regions"] == 1 else "s", extra))
        frames = e["stack"] or ["?"]
        for f in frames[:TEXT_FRAMES]:
            w("      " + f)
        if len(frames) > TEXT_FRAMES:
            w("      ... %d more" % (len(frames) - TEXT_FRAMES))
    if len(rows) > TEXT_STACKS:
        w("    ... %d more stacks (--json lists up to %d)" % (len(rows) - TEXT_STACKS, TOP_STACKS))


def _format_stacks(s, w):
    """R5: who holds the committed bytes, by the call stack that reserved them."""
    w("Who holds memory (committed bytes by the call stack that reserved the region)")
    for label, f in _rows(s):
        if label == "all" and len(s["processes"]) > 1:
            continue
        if "peak" not in f:
            continue
        w("  %s, at the peak (%s):" % (label, human_bytes(f["peak"]["committed_bytes"])))
        _format_stack_list(w, "by stack:", f["peak"]["by_stack"])
        w("  %s, leaked (never released):" % label)
        _format_stack_list(w, "by stack:", f["leaks"]["by_stack"])
    w("")


def format_text(s):
    out = []
    w = out.append
    w("hostmem summary")
    w("=" * 15)
    for c in s.get("commands") or [s.get("command")]:
        cmd = command_line(c)
        if cmd:
            w("Command: " + cmd)
    w(trust_banner(s))
    w("")
    ts = s["time_span"]
    w("Time span: %s .. %s (%s)" % (wall(ts["start_ns"]), wall(ts["end_ns"]),
                                    human_ns(ts["duration_ns"])))
    w("Hosts: %s" % ", ".join(s["hosts"]))
    w("Events: %d hostmem events, %s" % (s["events"], plural(s["managers"], "manager")))
    w(wrap("  " + ", ".join("%s %d" % kv for kv in s.get("events_by_name", {}).items())))
    wn = s.get("win32")
    if wn and (wn["write_watch"]["reads"] or wn["write_watch"]["resets"] or wn["guard_hits"]):
        ww = wn["write_watch"]
        w("Write watch: %d reads returned %d pages (%d reset), %d resets; guard hits %d"
          % (ww["reads"], ww["pages"], ww["reset_pages"], ww["resets"], wn["guard_hits"]))
    w("")
    w("Processes")
    w(table(["host", "process", "pid", "events", "managers", "discarded", "seq gaps", "duration"],
            [[p["host"] or "?", p["procname"] or "?", "?" if p["pid"] is None else p["pid"],
              p["events"], p["managers"], p["discarded_events"], p["seq_gaps"],
              human_ns(p["time_span"]["duration_ns"])] for p in s["processes"]]))
    w("")

    w("Operations (latency = time inside the call)")
    rows = []
    for label, f in _rows(s):
        for op, o in f["ops"].items():
            if not o["count"]:
                continue
            lat = o["latency_ns"]
            rows.append([label, op, o["count"], o["failed"], human_bytes(o["bytes"]),
                         human_ns(lat["p50"]), human_ns(lat["p90"]), human_ns(lat["p99"]),
                         human_ns(lat["p99_9"]), human_ns(lat["max"])])
    w(table(["process", "op", "count", "failed", "bytes", "p50", "p90", "p99", "p99.9", "max"], rows)
      if rows else "  (no operations)")
    w("")

    w("Failures by operation, level, HRESULT and reason")
    rows = []
    for label, f in _rows(s):
        for d in f["failures"]["detail"]:
            rows.append([label, d["op"], d["level"], d["hresult"], d["reason"], d["count"]])
    w(table(["process", "op", "level", "HRESULT", "reason", "count"], rows)
      if rows else "  none")
    w("")

    w("Critical-level decisions (when a limit applies)")
    rows = []
    for label, f in _rows(s):
        for d in f["critical_decisions"]["detail"]:
            rows.append([label, d["resource"], d["level"], d["decision"], d["count"]])
    w(table(["process", "resource", "level", "decision", "count"], rows) if rows else "  none")
    w("")

    w("Time in each memory state (managers with a commit limit)")
    rows = []
    for label, f in _rows(s):
        st = f["memory_state_ns"]
        tot = sum(st.values())
        if not tot:
            continue
        rows.append([label] + ["%s (%.0f%%)" % (human_ns(st[x]), 100.0 * st[x] / tot)
                               for x in STATES])
    w(table(["process"] + list(STATES), rows) if rows else "  no memory_state events")
    w("")

    w("Peaks")
    rows = []
    for label, f in _rows(s):
        rows.append([label, human_bytes(f["peak_reserved_bytes"]), clock(f["peak_reserved_ns"]),
                     human_bytes(f["peak_committed_bytes"]), clock(f["peak_committed_ns"])])
    w(table(["process", "peak reserved", "at", "peak committed", "at"], rows))
    w("")

    w("Leaks (regions the host never released: still reserved at the end, or freed only by destroy)")
    rows = []
    for label, f in _rows(s):
        lk = f["leaks"]
        rows.append([label, lk["regions"], human_bytes(lk["reserved_bytes"]),
                     human_bytes(lk["committed_bytes"]), lk["from_statedump"],
                     lk["at_destroy"]["regions"]])
    w(table(["process", "regions", "reserved", "committed", "seen by statedump",
             "left to destroy"], rows))
    for label, f in _rows(s):
        sites = f["leaks"]["by_caller"]
        if sites and (label != "all" or len(s["processes"]) > 1):
            w("  top call sites, %s:" % label)
            w(table(["reserved", "committed", "regions", "call site"],
                    [[human_bytes(e["reserved_bytes"]), human_bytes(e["committed_bytes"]),
                      e["regions"], e["site"]] for e in sites], indent="    "))
    w("")

    if s.get("live_at_crash", {}).get("regions"):
        w("Live at the crash (regions a process killed by a signal still held: not leaks)")
        rows = []
        for label, f in _rows(s):
            lc = f["live_at_crash"]
            if lc["regions"]:
                rows.append([label, lc["regions"], human_bytes(lc["reserved_bytes"]),
                             human_bytes(lc["committed_bytes"])])
        w(table(["process", "regions", "reserved", "committed"], rows))
        for label, f in _rows(s):
            sites = f["live_at_crash"]["by_caller"]
            if sites and (label != "all" or len(s["processes"]) > 1):
                w("  top call sites, %s:" % label)
                w(table(["reserved", "committed", "regions", "call site"],
                        [[human_bytes(e["reserved_bytes"]), human_bytes(e["committed_bytes"]),
                          e["regions"], e["site"]] for e in sites], indent="    "))
        w("")
    _format_stacks(s, w)

    t = s["temporary"]
    w("Temporary regions (released within %s of their reserve)" % human_ns(t["threshold_ns"]))
    rows = []
    for label, f in _rows(s):
        tt = f["temporary"]
        rows.append([label, tt["regions"], tt["of_released"], human_bytes(tt["bytes"]),
                     human_ns(tt["lifetime_ns"]["p50"])])
    w(table(["process", "regions", "of released", "bytes", "median lifetime"], rows))
    if t["by_caller"]:
        w("  top call sites:")
        w(table(["bytes", "regions", "call site"],
                [[human_bytes(e["bytes"]), e["regions"], e["site"]] for e in t["by_caller"]],
                indent="    "))
    w("")

    w("Heaps (hostmem_malloc): blocks never freed, by call site and by file:line")
    rows = []
    for label, f in _rows(s):
        hp = f["heap"]
        if not hp["allocs"] and not hp["heaps"]:
            continue
        rows.append([label, hp["heaps"], hp["allocs"], hp["frees"], hp["leaks"]["blocks"],
                     human_bytes(hp["leaks"]["bytes"]), human_bytes(hp["committed_at_peak_bytes"]),
                     "%.1f%%" % (100.0 * hp["share_of_committed"]["at_peak"]),
                     human_bytes(hp["committed_bytes"])])
    if rows:
        w(table(["process", "heaps", "allocs", "frees", "leaked blocks", "leaked bytes",
                 "heap at peak", "share of peak", "heap at end"], rows))
        for label, f in _rows(s):
            lc = f["heap"]["live_at_crash"]
            if lc["blocks"] and (label != "all" or len(s["processes"]) > 1):
                w("  %s: %s (%s) live at the crash, not leaks"
                  % (label, plural(lc["blocks"], "block"), human_bytes(lc["bytes"])))
        for label, f in _rows(s):
            lk = f["heap"]["leaks"]
            if not lk["blocks"] or (label == "all" and len(s["processes"]) > 1):
                continue
            w("  leaks by call site, %s:" % label)
            w(table(["bytes", "blocks", "call site"],
                    [[human_bytes(e["bytes"]), e["blocks"], e["site"]] for e in lk["by_site"]],
                    indent="    "))
            if lk["by_file_line"]:
                w("  leaks by file:line (debug allocations), %s:" % label)
                w(table(["bytes", "blocks", "file:line", "call site"],
                        [[human_bytes(e["bytes"]), e["blocks"], "%s:%d" % (e["file"], e["line"]),
                          e["site"]] for e in lk["by_file_line"]], indent="    "))
    else:
        w("  no heap events")
    w("")

    w("Reserve sizes (successful reserves, power-of-two buckets)")
    hist = s["reserve_size_histogram"]
    if hist:
        top = max(hist.values())
        rows = [[">= " + human_bytes(int(lo)), n, "#" * max(1, round(40.0 * n / top))]
                for lo, n in hist.items()]
        w(table(["size", "count", ""], rows))
    else:
        w("  none")
    if s["untracked_ops"]:
        w("")
        w("Note: %d operations touched regions the trace never showed being reserved "
          "(the session started later; enable hostmem:region_state to see them)."
          % s["untracked_ops"])
    return "\n".join(out) + "\n"
