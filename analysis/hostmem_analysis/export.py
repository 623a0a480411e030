"""hostmem-analyze export: the events as one flat table, or as a Perfetto trace (R7).

CSV (gzip): one row per hostmem event, in time order, the columns of
COLUMNS (docs/analysis.md describes each); a field an event does not have
is an empty cell.  Spark, DuckDB and pandas read it as it is.  `procname`
is the process's name as the summary gives it: the one its
lttng_ust_statedump:procname event says (read in a first pass: a statedump
can come after a process's first events), else the procname context.  A
region operation's row also holds what the layout leaves to the analysis
(T6), where its event does not carry it: the pages the call acted on and
the manager's books after it, from the summary's replay (model.py, or the
C engine's replay.c), and the free type its name says.

Perfetto: Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing): per
process, the counters `committed_bytes` and `reserved_bytes` (the replayed
totals, at most 16384 points per process), and an instant event per failure
and per critical-level decision.  A process is a (host, pid): it keeps its
pid unless a process met before it in the trace has the same pid (another
host), and then takes one above every Linux pid (PERFETTO_PID_BASE + 1, + 2,
...); its name says its host and real pid.

Both stream: memory does not grow with the number of events.  Several
traces are read apart, each by a reader of its own, and merged by time
(reader.read_apart): damage in one stops that trace alone, and one that
cannot be read is left out (all: reader.TraceError).  Both are written to a
temporary file beside the output, renamed to it when complete (output.py);
input without hostmem events writes nothing (NoEvents).
"""

import csv
import gzip
import json
import sys

from . import model as model_mod
from .output import atomic

COLUMNS = ("ts_ns", "host", "pid", "procname", "event", "seq", "manager", "address", "size",
           "base", "region_size", "alloc_type", "free_type", "protect", "old_protect", "level",
           "hr", "duration_ns", "caller", "op", "reason", "os_errno", "resource", "decision",
           "request_bytes", "level_ceiling", "limit", "waited_ns", "committed_bytes",
           "reserved_bytes", "old_state", "state", "action", "start", "external_bytes",
           "commit_limit", "address_space_limit", "page_size", "regions",
           "unreturned_mappings", "unreturned_bytes", "heap", "type", "file", "line",
           "live_blocks", "live_bytes", "live")

_PAYLOAD = [c for c in COLUMNS if c not in ("ts_ns", "host", "pid", "procname", "event")]
# Every payload column, asked of every hostmem event (the reader reads those
# the event has); start_ns comes back as duration_ns.
FIELDS = {name: tuple(_PAYLOAD) + ("start_ns",) for name in model_mod.FIELDS if ":" not in name}
for _n in ("failure", "critical_decision", "memory_state", "address_space", "manager_create",
           "manager_destroy", "region_state", "totals", "malloc_create", "malloc_destroy",
           "malloc_alloc", "malloc_free", "malloc_region"):
    FIELDS[_n] = tuple(_PAYLOAD)


# A region operation's cells the replay fills where its event has none, in
# the order of Model.last_op (and of replay.c's facts: engine.FACTS).
DERIVED = ("base", "region_size", "reserved_bytes", "committed_bytes")
MEM_DECOMMIT, MEM_RELEASE = 0x4000, 0x8000
_FREE_TYPES = {"decommit": MEM_DECOMMIT, "release": MEM_RELEASE}

# The event that names a process (its payload `procname`), for the name of
# every row of the process and of each Perfetto process.
_NAMES = {"lttng_ust_statedump:procname": ("procname",)}
# Pids Perfetto gives a process whose pid a process of another host already
# took: above Linux's highest pid_max (PID_MAX_LIMIT, 4,194,304).
PERFETTO_PID_BASE = 1 << 22


def _events(paths, trust, fields=FIELDS):
    from . import reader
    from .output import interrupts
    for ev in reader.read(paths, fields, trust):
        if interrupts:  # a Ctrl-C noted while babeltrace2 ran (output.on_sigint)
            raise KeyboardInterrupt
        if ev["name"] != "discarded":
            yield ev


def _procnames(paths):
    """(host, pid) -> name of every process of one trace (`paths`: it and
    its copies) a lttng_ust_statedump:procname
    event names (the summary's rule: the last one), keyed as the rows are
    (host "" and pid "" when there is none).  Read by the C engine when it
    can, else through babeltrace2."""
    import os
    from . import reader
    m = None
    if os.environ.get("HOSTMEM_ANALYZE_ENGINE", "c") == "c":
        from . import engine
        try:
            m, _ = engine.analyse(paths, fields=_NAMES)
        except engine.Unsupported:
            m = None  # the rows' pass says why, or fails when strict
    if m is None:
        m = model_mod.Model().feed_all(reader.read(paths, _NAMES, reader.new_trust()))
    from .output import check_interrupted
    check_interrupted()
    return {(host or "", "" if pid is None else pid): p.procname
            for (host, pid), p in m.processes.items() if p.procname}


def _completed(rows, names):
    """The rows, each with its process's name when a statedump gave one, and
    a decommit's or release's free type: the event's name says it (a release
    refused may have been given another, invalid one: left empty)."""
    get = names.get
    ft, hr = COLUMNS.index("free_type"), COLUMNS.index("hr")
    for row in rows:
        name = get((row[1], row[2]))
        if name:
            row[3] = name
        free = _FREE_TYPES.get(row[4])
        if free is not None and row[ft] == "" and (free == MEM_DECOMMIT
                                                   or row[hr] in ("S_OK", "")):
            row[ft] = free
        yield row


def _trace_rows(group, trust, python, i):
    """The rows of one trace (and its copies): decoded by the C engine
    (engine.export_rows) unless it is not to be used (--engine python) or
    `i` is in `python` (it could not read this trace), else through
    babeltrace2.  The C engine's damage before the first row hands the trace
    to babeltrace2 here; after some rows, it raises _Again for the table to
    start again with this trace read through babeltrace2."""
    import os
    from . import engine
    if os.environ.get("HOSTMEM_ANALYZE_ENGINE", "c") == "c" and i not in python:
        it = engine.export_rows(group, FIELDS, _PAYLOAD, trust)
        try:
            first = next(it)
        except StopIteration:
            return
        except engine.Unsupported as u:
            _fallback(group, u)
            python.add(i)
            for v in trust.values():  # what the engine's check found, found again
                v.clear()
        else:
            yield first
            try:
                yield from it
            except engine.Unsupported as u:
                _fallback(group, u)
                raise _Again(i)
            return
    yield from _rows(_events(group, trust))


class _Again(Exception):
    """The C engine met damage after some rows of trace `i`: the table starts
    again, that trace read through babeltrace2."""

    def __init__(self, i):
        super().__init__(i)
        self.i = i


def _fallback(paths, u):
    """The C engine cannot read `paths`: say why, or fail when strict."""
    import os
    if os.environ.get("HOSTMEM_ANALYZE_ENGINE_STRICT"):
        from .cli import UsageError
        raise UsageError("the C engine cannot read %s: %s"
                         % (", ".join(paths), u.note or "decoding failed"))
    if u.note:
        sys.stderr.write("hostmem-analyze: %s; reading with babeltrace2 instead (slower)\n"
                         % u.note)


def write_csv(paths, out_path, trust):
    """Write the gzip CSV; returns the number of rows.  Each trace is read
    apart, by a reader of its own, and their rows merged by time
    (reader.read_apart):
    damage in one stops that trace alone, one that cannot be read is left
    out (its reason in trust["stopped"]), and when none can be, the first
    reason is raised (reader.TraceError).  The events come from the C engine
    when it reads the trace (the same rows as through babeltrace2, a few
    times faster); damage it meets after a trace's first rows makes the
    table start again with that trace read through babeltrace2."""
    from . import reader
    groups, dups = reader.unique_traces(paths)
    names = {}
    for group in groups:
        try:
            names.update(_procnames(group))
        except reader.TraceError:
            pass  # the rows' pass leaves it out and says why
    index = {id(group): i for i, group in enumerate(groups)}
    python = set()  # the traces the C engine could not read
    while True:
        trust.clear()
        trust.update(reader.new_trust())
        rows = reader.read_apart(groups, lambda group, t: _trace_rows(group, t, python,
                                                                      index[id(group)]),
                                 lambda row: row[0], trust, dups)
        try:
            return _write_csv(_completed(rows, names), out_path)
        except _Again as again:
            python.add(again.i)


def _rows(events):
    """The rows of the events, replayed by model.py as the summary does."""
    m = model_mod.Model()
    derived = [COLUMNS.index(c) for c in DERIVED]
    for ev in events:
        m.feed(ev)
        row = [ev["ts"], ev.get("host") or "", "" if ev.get("pid") is None else ev["pid"],
               ev.get("procname") or "", ev["name"]]
        for c in _PAYLOAD:
            v = ev.get(c)
            row.append("" if v is None else v)
        if ev["name"] in model_mod.REGION_OPS:
            for i, v in zip(derived, m.last_op):
                if row[i] == "" and v is not None:
                    row[i] = v
        yield row


class NoEvents(Exception):
    """The input holds no hostmem event: nothing is written (the summary's rule)."""


def _write_csv(rows, out_path):
    n = 0
    with atomic(out_path, "wb") as raw:
        with gzip.open(raw, "wt", newline="", compresslevel=3) as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for row in rows:
                w.writerow(row)
                n += 1
        if n == 0:
            raise NoEvents()
    return n


def write_perfetto(paths, out_path, trust, temporary_ns=model_mod.DEFAULT_TEMPORARY_NS):
    """Write Chrome trace-event JSON; returns (counters, instants) written."""
    m = model_mod.Model(temporary_ns=temporary_ns)
    instants = 0
    pids = {}      # (host, pid) -> its Perfetto pid, in the order processes appear
    taken = set()  # real pids given

    def perfetto_pid(host, pid):
        v = pids.get((host, pid))
        if v is None:
            v = pid or 0
            if v in taken:  # the pid of a process of another host, met before
                v = PERFETTO_PID_BASE + len(pids) - len(taken) + 1
            else:
                taken.add(v)
            pids[(host, pid)] = v
        return v

    with atomic(out_path) as f:
        f.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
        first = True

        def put(obj):
            nonlocal first
            if not first:
                f.write(",\n")
            first = False
            f.write(json.dumps(obj, separators=(",", ":")))

        for ev in _events(paths, trust, dict(FIELDS, **_NAMES)):
            m.feed(ev)
            pid = perfetto_pid(ev.get("host"), ev.get("pid"))
            name = ev["name"]
            if name == "failure":
                put({"ph": "i", "s": "p", "pid": pid, "tid": 0,
                     "ts": ev["ts"] / 1000.0, "cat": "failure",
                     "name": "failure %s %s" % (ev.get("op"), ev.get("hr")),
                     "args": {k: ev.get(k) for k in ("op", "hr", "reason", "level", "os_errno",
                                                     "address", "size")}})
                instants += 1
            elif name == "critical_decision":
                put({"ph": "i", "s": "p", "pid": pid, "tid": 0,
                     "ts": ev["ts"] / 1000.0, "cat": "decision",
                     "name": "%s %s" % (ev.get("decision"), ev.get("level")),
                     "args": {k: ev.get(k) for k in ("resource", "level", "decision",
                                                     "request_bytes", "committed_bytes",
                                                     "level_ceiling", "limit", "waited_ns")}})
                instants += 1
        m.finish()
        if m.all.events == 0:
            raise NoEvents()
        counters = 0
        for p in m.sorted_processes():
            pid = perfetto_pid(p.host, p.pid)
            put({"ph": "M", "name": "process_name", "pid": pid,
                 "args": {"name": p.label(), "host": p.host, "pid": p.pid}})
            for t, r, c in zip(p.t_ts, p.t_reserved, p.t_committed):
                put({"ph": "C", "name": "committed_bytes", "pid": pid, "ts": t / 1000.0,
                     "args": {"committed_bytes": c}})
                put({"ph": "C", "name": "reserved_bytes", "pid": pid, "ts": t / 1000.0,
                     "args": {"reserved_bytes": r}})
                counters += 2
        f.write("\n]}\n")
    return counters, instants
