"""Compare two `summary --json` documents metric by metric.

Every numeric leaf is listed side by side (the merged figures, then each
process matched by host and name, since pids change between runs).  A
metric where more is worse (failures, latencies, peaks, leaks, discarded
events, denials) that grew by more than the threshold is flagged as a
regression; one that shrank as much is marked as an improvement.
"""

# Leaves whose growth is bad; matched against the dotted path.
_WORSE_WHEN_HIGHER = ("failed", "latency_ns", "failures", "denied", "granted_from_reserve",
                      "peak_", "leaks", "discarded", "seq_gaps", "temporary.regions",
                      "temporary.bytes", "untracked", "memory_state_ns.low", "waited_ns")
# Leaves that are identities or times, not metrics.
_SKIP = ("time_span", "_ns_at", "peak_committed_ns", "peak_reserved_ns", "pid",
         "threshold_ns", "statedump_objects", "by_caller", "detail", "address_space",
         "end_ns", "start_ns")


def flatten(doc, prefix="", out=None):
    """{dotted.path: number} of every numeric leaf."""
    if out is None:
        out = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "processes":
                continue
            flatten(v, prefix + k + ".", out)
    elif isinstance(doc, bool):
        pass
    elif isinstance(doc, (int, float)):
        out[prefix[:-1]] = doc
    return out


def _skip(path):
    return any(s in path for s in _SKIP)


def _worse_when_higher(path):
    return any(s in path for s in _WORSE_WHEN_HIGHER)


def _proc_key(p):
    return "%s/%s" % (p.get("host") or "?", p.get("procname") or "?")


def _sections(doc):
    yield "all", doc
    seen = {}
    for p in doc.get("processes", []):
        k = _proc_key(p)
        seen[k] = seen.get(k, 0) + 1
        yield (k if seen[k] == 1 else "%s#%d" % (k, seen[k])), p


def not_a_summary(doc):
    """Why `doc` is not a `summary --json` document, or None."""
    if not isinstance(doc, dict):
        return "a JSON %s, not an object" % type(doc).__name__.replace("dict", "object")
    missing = [k for k in ("events", "processes") if k not in doc]
    if missing:
        return "no %s" % " and no ".join(repr(k) for k in missing)
    if not isinstance(doc["processes"], list) or not all(isinstance(p, dict)
                                                         for p in doc["processes"]):
        return "'processes' is not a list of objects"
    return None


def diff(base, new, threshold=0.10):
    """(text, number of regressions)."""
    lines = []
    regressions = 0
    improvements = 0
    base_secs = dict(_sections(base))
    new_secs = dict(_sections(new))
    names = list(base_secs) + [n for n in new_secs if n not in base_secs]
    if len(base.get("processes", [])) <= 1 and len(new.get("processes", [])) <= 1:
        names = ["all"]
    for name in names:
        a = flatten(base_secs.get(name, {}))
        b = flatten(new_secs.get(name, {}))
        rows = []
        for path in sorted(set(a) | set(b)):
            if _skip(path):
                continue
            va, vb = a.get(path), b.get(path)
            flag = ""
            if va is not None and vb is not None and va != vb:
                change = (vb - va) / abs(va) if va else float("inf")
                big = abs(change) > threshold
                if big and _worse_when_higher(path):
                    if vb > va:
                        flag = "REGRESSION"
                        regressions += 1
                    else:
                        flag = "improved"
                        improvements += 1
                pct = "new" if not va else "%+.1f%%" % (100.0 * change)
            elif va == vb:
                pct = ""
            else:
                pct = "only in " + ("base" if vb is None else "new")
            rows.append((path, _fmt(va), _fmt(vb), pct, flag))
        lines.append("== %s ==" % name)
        w = max([len(r[0]) for r in rows] + [6])
        wa = max([len(r[1]) for r in rows] + [4])
        wb = max([len(r[2]) for r in rows] + [3])
        lines.append("%s  %s  %s  %8s  %s" % ("metric".ljust(w), "base".rjust(wa),
                                              "new".rjust(wb), "change", "flag"))
        for path, va, vb, pct, flag in rows:
            lines.append(("%s  %s  %s  %8s  %s" % (path.ljust(w), va.rjust(wa), vb.rjust(wb),
                                                   pct, flag)).rstrip())
        lines.append("")
    lines.append("%d regression%s, %d improvement%s (threshold %.0f%%)"
                 % (regressions, "" if regressions == 1 else "s", improvements,
                    "" if improvements == 1 else "s", threshold * 100))
    return "\n".join(lines) + "\n", regressions


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.3g" % v
    return str(v)
