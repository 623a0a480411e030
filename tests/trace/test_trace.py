#!/usr/bin/python3
"""Trace tests: real LTTng sessions around trace_workload, read back with bt2.

Each test creates its own session (unique name, temporary output), records
the provider `hostmem` with the vpid context, runs one scenario of
trace_workload and compares the events of that process with what the
workload printed it did (T1-T5).  Other processes tracing at the
same time do not matter: events are kept by vpid.

    test_trace.py --workload PATH [--workload-static PATH] --provider PATH [unittest args]

Missing LTTng tools or bt2 fail the test: scripts/setup installs them.
Needs Debian's python3-bt2 (run it with /usr/bin/python3).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

try:
    import bt2
except ImportError:  # pragma: no cover - environment problem, not a test result
    print("test_trace.py: python3-bt2 is not importable by", sys.executable, file=sys.stderr)
    sys.exit(1)

WORKLOAD = None
WORKLOAD_STATIC = None
PROVIDER = None
TIMEOUT = 60  # seconds per command; a run takes about one

MEM_COMMIT, MEM_RESERVE, MEM_DECOMMIT, MEM_RELEASE = 0x1000, 0x2000, 0x4000, 0x8000
MEM_RESET, MEM_RESET_UNDO = 0x80000, 0x1000000
PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE, PAGE_EXECUTE_READ = 0x01, 0x02, 0x04, 0x20
# Layout v2 (docs/tracing.md): every region event starts with these.
_HEAD = {"seq", "manager", "start_ns", "hr", "hr#", "address", "caller"}
# Every field of each event, exactly (an enum adds its integer as "name#").
SCHEMA = {
    "reserve": _HEAD | {"size", "base", "alloc_type", "protect", "level", "level#"},
    "commit": _HEAD | {"size", "alloc_type", "protect", "level", "level#"},
    "decommit": _HEAD | {"size", "level", "level#"},
    "release": _HEAD,
    "protect": _HEAD | {"size", "protect", "old_protect"},
    "reset": _HEAD | {"size", "level", "level#"},
    "reset_undo": _HEAD | {"size", "level", "level#"},
    "query": _HEAD | {"base", "region_size", "state", "protect"},
    "totals": {"seq", "manager", "reserved_bytes", "committed_bytes"},
    "failure": {"seq", "manager", "op", "op#", "hr", "hr#", "reason", "reason#", "os_errno",
                "address", "size", "level", "level#"},
    "critical_decision": {"seq", "manager", "resource", "resource#", "level", "level#",
                          "request_bytes", "committed_bytes", "level_ceiling", "limit",
                          "decision", "decision#", "waited_ns"},
    "memory_state": {"seq", "manager", "old_state", "old_state#", "state", "state#",
                     "committed_bytes", "limit"},
    "address_space": {"seq", "manager", "action", "action#", "start", "size", "hr", "hr#",
                      "external_bytes"},
    "manager_create": {"seq", "manager", "commit_limit", "address_space_limit", "page_size"},
    "manager_destroy": {"seq", "manager", "regions", "reserved_bytes", "committed_bytes",
                        "unreturned_mappings", "unreturned_bytes"},
    "region_state": {"seq", "manager", "base", "region_size", "committed_bytes", "protect", "caller"},
    "malloc_alloc": {"seq", "heap", "address", "size", "level", "level#", "caller"},
    "malloc_debug": {"seq", "file", "line"},
    "malloc_free": {"seq", "heap", "address", "size", "caller"},
    "malloc_create": {"seq", "manager", "heap", "type"},
    "malloc_destroy": {"seq", "manager", "heap", "live_blocks", "live_bytes"},
    "malloc_region": {"seq", "manager", "heap", "base", "size", "live"},
    "write_watch": {"seq", "manager", "base", "size", "pages", "reset", "read", "hr", "hr#",
                    "duration_ns"},
    "guard_hit": {"seq", "manager", "address", "base"},
}
REGION_OPS = {"reserve", "commit", "decommit", "release", "protect", "reset", "reset_undo", "query"}


def lttng(*args):
    subprocess.run(["lttng", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=TIMEOUT)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "analysis"))
from hostmem_analysis.sessiond import ensure_sessiond  # noqa: E402  (start a daemon only when none runs)


class Session:
    """One LTTng session recording hostmem events into a temporary directory."""

    def __init__(self, events="hostmem:*", loglevel=None, filter=None):
        self.name = "hostmem-test-" + uuid.uuid4().hex[:12]
        self.tmp = tempfile.mkdtemp(prefix="hostmem-trace-")
        self.path = os.path.join(self.tmp, "trace")
        self.events = events
        self.loglevel = loglevel
        self.filter = filter
        self.created = False

    def __enter__(self):
        lttng("create", self.name, "--output", self.path)
        self.created = True
        # Large sub-buffers: nothing of a test's few thousand events is lost.
        # Buffers per process: every process on the machine that loads the
        # provider is recorded too (other suites run beside this one, some of
        # them crash on purpose), and a test reads its own process's trace only.
        lttng("enable-channel", "-u", "-s", self.name, "--buffers-pid", "--subbuf-size", "1M",
              "--num-subbuf", "8", "ch")
        lttng("add-context", "-u", "-s", self.name, "-c", "ch", "-t", "vpid")
        cmd = ["enable-event", "-u", "-s", self.name, "-c", "ch", self.events]
        if self.loglevel:
            cmd += ["--loglevel", self.loglevel]
        if self.filter:
            cmd += ["--filter", self.filter]
        lttng(*cmd)
        lttng("start", self.name)
        return self

    def stop(self):
        if self.created:
            lttng("stop", self.name)
            lttng("destroy", self.name)
            self.created = False

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def dirs(self, pid):
        """The trace directories of process `pid`: ust/pid/NAME-PID-DATE-TIME
        (none when it never loaded the provider)."""
        top = os.path.join(self.path, "ust", "pid")
        mine = [os.path.join(top, d) for d in sorted(os.listdir(top)) if d.split("-")[-3:-2] == [str(pid)]] \
            if os.path.isdir(top) else []
        return [d for d in mine if os.path.exists(os.path.join(d, "metadata"))]

    def read(self, pid):
        """Events of process `pid` in trace order, as dicts; and the discarded count."""
        events, discarded = [], 0
        mine = self.dirs(pid)
        if not mine:
            return events, discarded
        it = bt2.TraceCollectionMessageIterator(mine)
        for msg in it:
            if type(msg) is bt2._DiscardedEventsMessageConst:
                discarded += msg.count or 1
            elif type(msg) is bt2._EventMessageConst:
                ev = msg.event
                if int(ev.common_context_field["vpid"]) != pid:
                    continue
                if not ev.name.startswith("hostmem:"):
                    continue
                # "_end": the event's clock value (CLOCK_MONOTONIC ns), the
                # end of a region operation whose start_ns the event carries.
                d = {"event": ev.name[len("hostmem:"):],
                     "_end": msg.default_clock_snapshot.value}
                for key, field in ev.payload_field.items():
                    if hasattr(field, "labels"):
                        labels = list(field.labels)
                        d[key] = labels[0] if labels else None
                        d[key + "#"] = int(field)
                    elif isinstance(field, bt2._StringFieldConst):
                        # len first: an empty field may still hold an older value's text
                        d[key] = str(field) if len(field) else ""
                    else:
                        d[key] = int(field)
                events.append(d)
        return events, discarded


def workload_env(**extra):
    env = dict(os.environ)
    # Wait for the session daemon however long it takes: an application that
    # starts tracing before its registration completes loses its first events.
    env["LTTNG_UST_REGISTER_TIMEOUT"] = "-1"
    env.update(extra)
    return env


def run_workload(scenario, workload=None, **env):
    out = subprocess.run([workload or WORKLOAD, scenario], check=True, stdout=subprocess.PIPE,
                         env=workload_env(**env), timeout=TIMEOUT, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def engine_lib():
    """The C analysis engine built beside the workload (build tree: bin/ and lib/), or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(WORKLOAD)), "..", "lib", "libhostmem_engine.so")
    return path if os.path.exists(path) else None


def analyze_json(trace_dir, engine="python"):
    """The analysis's summary of a recorded trace (the installed-tree layout: analysis/ beside
    tests/), read by reader.py and model.py, or by the C engine built beside the workload."""
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "analysis", "hostmem-analyze")
    env = dict(os.environ)
    if engine == "c":
        env["HOSTMEM_ENGINE_LIB"] = engine_lib()
    out = subprocess.run([sys.executable, tool, "summary", "--json", "--engine", engine, trace_dir],
                         check=True, stdout=subprocess.PIPE, timeout=TIMEOUT, text=True, env=env).stdout
    return json.loads(out)


def export_rows(trace_dirs, out, engine="python"):
    """hostmem-analyze export of the trace directories into `out`, by one engine (the C
    engine strictly: no fallback to babeltrace2); the table's text."""
    import gzip
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "analysis", "hostmem-analyze")
    env = dict(os.environ)
    if engine == "c":
        env["HOSTMEM_ENGINE_LIB"] = engine_lib()
        env["HOSTMEM_ANALYZE_ENGINE_STRICT"] = "1"
    subprocess.run([sys.executable, tool, "export", "--engine", engine, *trace_dirs, "-o", out],
                   check=True, stdout=subprocess.DEVNULL, timeout=TIMEOUT, env=env)
    with gzip.open(out, "rt") as f:
        return f.read()


def round_up(n, to):
    return (n + to - 1) // to * to


class TraceTest(unittest.TestCase):
    maxDiff = None

    # ---- helpers ---------------------------------------------------------
    def check_common(self, header, events, from_start=True):
        """seq counts 1, 2, ... in emission order (from where the session came
        in, when it started after the process); every event names the manager."""
        self.assertTrue(events, "no hostmem event recorded")
        first = 1 if from_start else events[0]["seq"]
        self.assertEqual([e["seq"] for e in events], list(range(first, first + len(events))))
        for e in events:
            self.assertEqual(e["manager"], header["manager"], e)
            # The documented layout, exactly: addresses, sizes and codes only,
            # no field could carry memory contents.
            self.assertEqual(set(e) - {"event", "_end"}, SCHEMA[e["event"]], e)
            if e["event"] == "reserve":
                self.assertTrue(header["text_lo"] <= e["caller"] < header["text_hi"],
                                "caller %#x is not in the host's code: %r" % (e["caller"], e))
            if e["event"] in REGION_OPS:
                self.assertIsNotNone(e["hr"], "hr without a label: %r" % e)
                # The call started before its event was recorded (0: before the session).
                self.assertLess(e["start_ns"], e["_end"], e)
                if from_start:
                    self.assertGreater(e["start_ns"], 0, e)
            if e["event"] == "commit":
                self.assertIsNotNone(e["level"], "level without a label: %r" % e)

    def expect(self, ev, name, **fields):
        self.assertEqual(ev["event"], name, ev)
        for key, want in fields.items():
            self.assertEqual(ev[key], want, "%s.%s in %r" % (name, key, ev))

    def expect_failure(self, ev, op, hr, address, size, level):
        self.expect(ev, "failure", op=op, hr=hr, address=address, size=size, level=level)
        self.assertIsNotNone(ev["reason"], "failure reason without a label: %r" % ev)

    # ---- scenarios -------------------------------------------------------
    def test_basic(self):
        """Every region operation, two failures, a leaked region at destroy."""
        with Session() as s:
            lines = run_workload("basic")
            s.stop()
            header, calls = lines[0], lines[1:]
            events, discarded = s.read(header["pid"])
        self.assertEqual(discarded, 0)
        self.check_common(header, events)
        P = header["page"]
        # A session starting elsewhere may make the manager dump its regions.
        ev = iter([e for e in events if e["event"] != "region_state"])

        self.expect(next(ev), "manager_create", commit_limit=0, address_space_limit=0, page_size=P)
        by = {}
        for c in calls:
            by.setdefault(c["call"], []).append(c)

        # A reserve-and-commit emits both events when the call ends; the
        # commit half names the whole new region.  hostmem:totals: the
        # thread's first call brings one (and then every 64th region event),
        # after the call's events, with the manager's books after the call.
        c = by["reserve_commit"][0]
        p, psize = c["result"], round_up(100000, P)
        self.expect(next(ev), "reserve", address=0, size=100000, base=p,
                    alloc_type=MEM_RESERVE | MEM_COMMIT, protect=PAGE_READWRITE, hr="S_OK")
        e = next(ev)
        self.expect(e, "commit", address=p, size=psize, alloc_type=MEM_RESERVE | MEM_COMMIT,
                    protect=PAGE_READWRITE, level="task", hr="S_OK")
        self.expect(next(ev), "totals", reserved_bytes=psize, committed_bytes=psize)

        r = by["reserve"][0]["result"]
        MB = 1 << 20
        self.expect(next(ev), "reserve", address=0, size=MB, base=r, alloc_type=MEM_RESERVE,
                    protect=PAGE_NOACCESS, hr="S_OK")

        c = by["commit"][0]
        cp = c["address"]
        self.expect(next(ev), "commit", address=cp, size=2 * P + 1, alloc_type=MEM_COMMIT,
                    protect=PAGE_READWRITE, level="process", hr="S_OK")

        self.expect(next(ev), "protect", address=cp, size=P, protect=PAGE_READONLY,
                    old_protect=PAGE_READWRITE, hr="S_OK")

        self.expect(next(ev), "query", address=cp + 5, base=cp, region_size=P,
                    protect=PAGE_READONLY, state=MEM_COMMIT, hr="S_OK")

        self.expect(next(ev), "reset", address=cp + P, size=P, hr="S_OK")

        c = by["reset_undo"][0]
        self.expect(next(ev), "reset_undo", address=cp + P, size=P, hr=c["hr"])
        if c["hr"] != "S_OK":
            self.expect_failure(next(ev), "reset_undo", c["hr"], cp + P, P, "task")

        self.expect(next(ev), "decommit", address=cp + P, size=P, hr="S_OK")

        # A release with a size: the failure carries the size given.
        self.expect(next(ev), "release", address=r, hr="E_INVALIDARG")
        self.expect_failure(next(ev), "release", "E_INVALIDARG", r, 5, "none")

        bad = by["protect"][1]["address"]
        self.expect(next(ev), "protect", address=bad, size=P, protect=PAGE_READWRITE,
                    hr="HOSTMEM_E_INVALID_ADDRESS")
        self.expect_failure(next(ev), "protect", "HOSTMEM_E_INVALID_ADDRESS", bad, P, "none")

        self.expect(next(ev), "release", address=p, hr="S_OK")

        self.expect(next(ev), "manager_destroy", regions=1, reserved_bytes=MB,
                    committed_bytes=2 * P)
        self.assertIsNone(next(ev, None), "unexpected event after manager_destroy")

    def test_writers(self):
        """The provider's one-write writers of the region events record what its
        generated probes record: a session with a filter (always true) goes
        through the generated probes, one without through the writers, both
        recording the same calls of the same run."""
        with Session() as plain, Session(filter="seq != 0") as filtered:
            lines = run_workload("basic")
            plain.stop()
            filtered.stop()
            pid = lines[0]["pid"]
            written, discarded = plain.read(pid)
            self.assertEqual(discarded, 0)
            probed, discarded = filtered.read(pid)
            self.assertEqual(discarded, 0)

        def ops(events):
            return [{k: v for k, v in e.items() if k != "_end"} for e in events
                    if e["event"] in REGION_OPS]
        self.assertEqual({e["event"] for e in ops(written)}, REGION_OPS)
        self.assertEqual(ops(written), ops(probed))
        self.check_common(lines[0], written)

    def test_limits(self):
        """Critical-level decisions, memory states, external address space."""
        with Session() as s:
            lines = run_workload("limits")
            s.stop()
            header, calls = lines[0], lines[1:]
            events, discarded = s.read(header["pid"])
        self.assertEqual(discarded, 0)
        self.check_common(header, events)
        P = header["page"]
        L = 100 * P

        decisions = [e for e in events if e["event"] == "critical_decision"]
        for d in decisions:
            self.expect(d, "critical_decision", resource="commit", limit=L)
        want = [  # (level, request pages, committed pages before, ceiling pages, decision)
            ("task", 80, 0, 90, "granted"),
            ("task", 15, 80, 90, "denied"),
            ("appdomain", 15, 80, 97, "granted_from_reserve"),
            ("process", 4, 95, 100, "granted_from_reserve"),
        ]
        got = [(d["level"], d["request_bytes"] // P, d["committed_bytes"] // P,
                d["level_ceiling"] // P, d["decision"]) for d in decisions]
        self.assertEqual(got[:4], want)
        # The last request re-checks after telling the callback Low (and may
        # wait): one request, one decision, denied.
        self.assertEqual(len(got), 5, got)
        self.assertEqual(got[4], ("process", 2, 99, 100, "denied"))

        commits = [c for c in calls if c["call"] == "commit"]
        self.assertEqual([c["hr"] for c in commits],
                         ["S_OK", "E_OUTOFMEMORY", "S_OK", "S_OK", "E_OUTOFMEMORY"])
        ops = [e for e in events if e["event"] == "commit"]
        self.assertEqual([e["hr"] for e in ops], [c["hr"] for c in commits])
        self.assertEqual([e["level"] for e in ops],
                         ["task", "task", "appdomain", "process", "process"])
        # Each denied commit: the commit event, then its failure.
        for i, e in enumerate(events):
            if e["event"] == "commit" and e["hr"] != "S_OK":
                f = events[i + 1]
                self.expect_failure(f, "commit", "E_OUTOFMEMORY", e["address"], e["size"],
                                    e["level"])
                self.assertEqual(f["reason"], "limit_denied")

        # Memory state: High below 60 %, Low at or above 90 % (defaults).
        changes = [(e["old_state"], e["state"], e["committed_bytes"] // P)
                   for e in events if e["event"] == "memory_state"
                   and e["old_state"] not in ("none", e["state"])]
        self.assertEqual(changes, [("high", "neutral", 80), ("neutral", "low", 95),
                                   ("low", "high", 0)])
        for e in events:
            if e["event"] == "memory_state":
                self.assertEqual(e["limit"], L)

        ext = next(c for c in calls if c["call"] == "needs")["address"]
        MB = 1 << 20
        space = [(e["action"], e["start"], e["size"], e["hr"], e["external_bytes"])
                 for e in events if e["event"] == "address_space"]
        self.assertEqual(space, [("needs", ext, MB, "S_OK", 0),
                                 ("acquired", ext, MB, "S_OK", MB),
                                 ("released", ext, MB, "S_OK", 0),  # the range given back
                                 ("released", ext, 0, "HOST_E_INVALIDOPERATION", 0)])
        last = max(i for i, e in enumerate(events) if e["event"] == "address_space")
        self.expect(events[last + 1], "failure", op="released_address_space",
                    hr="HOST_E_INVALIDOPERATION", address=ext)

        self.expect(events[-1], "manager_destroy", regions=0, reserved_bytes=0, committed_bytes=0)

    def test_wait(self):
        """P2: a process-critical commit over the limit waits until another thread
        decommits and is then granted: its one critical_decision says so, with the
        time it waited (the looks before it are not decisions of their own)."""
        with Session() as s:
            lines = run_workload("wait")
            s.stop()
            header, calls = lines[0], lines[1:]
            events, discarded = s.read(header["pid"])
        self.assertEqual(discarded, 0)
        P = header["page"]
        self.assertEqual([c["hr"] for c in calls if c["call"] == "commit"], ["S_OK", "S_OK"])
        got = [(d["level"], d["request_bytes"] // P, d["decision"])
               for d in events if d["event"] == "critical_decision"]
        self.assertEqual(got, [("task", 8, "granted"), ("process", 4, "granted")])
        last = [d for d in events if d["event"] == "critical_decision"][-1]
        self.assertGreaterEqual(last["waited_ns"], 50 * 1000 * 1000)

    def test_halves(self):
        """A reserve-and-commit's two events come when the call ends: MEM_COMMIT at no
        address is one too (its commit names the new region), and when the commit is
        refused the reserve carries the call's failure, so the analysis counts no
        region, bytes or peak for it (in both engines)."""
        with Session() as s:
            lines = run_workload("halves")
            s.stop()
            header, calls = lines[0], lines[1:]
            events, discarded = s.read(header["pid"])
            summaries = [analyze_json(s.path)] + ([analyze_json(s.path, "c")] if engine_lib() else [])
        self.assertEqual(discarded, 0)
        self.check_common(header, events)
        P = header["page"]
        ev = iter([e for e in events if e["event"] not in ("region_state", "critical_decision",
                                                          "memory_state", "totals")])
        self.expect(next(ev), "manager_create", commit_limit=10 * P)
        p = calls[0]["result"]
        self.expect(next(ev), "reserve", address=0, size=2 * P, base=p, alloc_type=MEM_COMMIT,
                    hr="S_OK")
        self.expect(next(ev), "commit", address=p, size=2 * P, alloc_type=MEM_COMMIT, hr="S_OK")
        self.assertEqual(calls[1]["result"], 0)
        refused = next(ev)
        self.expect(refused, "reserve", address=0, size=20 * P, alloc_type=MEM_RESERVE | MEM_COMMIT,
                    hr="E_OUTOFMEMORY")
        self.assertNotEqual(refused["base"], 0, "the event names the region given back")
        self.expect(next(ev), "commit", address=refused["base"], size=20 * P, hr="E_OUTOFMEMORY")
        self.expect_failure(next(ev), "commit", "E_OUTOFMEMORY", 0, 20 * P, "task")
        self.expect(next(ev), "release", address=p, hr="S_OK")
        self.expect(next(ev), "manager_destroy", regions=0, reserved_bytes=0, committed_bytes=0)
        for summary in summaries:
            ops = summary["ops"]
            self.assertEqual((ops["reserve"]["count"], ops["reserve"]["failed"],
                              ops["reserve"]["bytes"]), (2, 1, 2 * P))
            self.assertEqual((ops["commit"]["count"], ops["commit"]["failed"],
                              ops["commit"]["bytes"]), (2, 1, 2 * P))
            self.assertEqual(summary["peak_reserved_bytes"], 2 * P)
            self.assertEqual(summary["peak_committed_bytes"], 2 * P)
            self.assertEqual(summary["leaks"]["regions"], 0)
            self.assertTrue(summary["trust"]["complete"], summary["trust"])

    def test_export(self):
        """T1 through T6: every region operation's row of `hostmem-analyze export`
        holds the facts the layout leaves to the analysis: the page-rounded range
        the call acted on (base, region_size; empty for a refused call unless its
        event names one), the manager's books after it (reserved_bytes,
        committed_bytes: what hostmem_get_stats said then; a reserve-and-commit's
        reserve row, after its reserve half) and the free type; both engines write
        the same table."""
        try:
            import pandas as pd
        except ImportError:
            self.skipTest("python3-pandas is not installed")
        with Session() as s:
            lines = run_workload("books")
            s.stop()
            header, calls = lines[0], lines[1:]
            pid = header["pid"]
            events, discarded = s.read(pid)
            engines = ["python"] + (["c"] if engine_lib() else [])
            tables = {e: export_rows(s.dirs(pid), os.path.join(s.tmp, e + ".csv.gz"), e)
                      for e in engines}
            df = pd.read_csv(os.path.join(s.tmp, "python.csv.gz"),
                             dtype={c: "UInt64" for c in ("base", "region_size", "reserved_bytes",
                                                          "committed_bytes", "free_type")})
        self.assertEqual(discarded, 0)
        self.check_common(header, events)
        for e in engines[1:]:
            self.assertEqual(tables[e], tables["python"], "%s engine's table" % e)
        P = header["page"]

        def value(v):
            return None if pd.isna(v) else int(v)

        df = df[df["pid"] == pid]
        self.assertEqual(len(df), len(events))
        ops = [e for e in events if e["event"] in REGION_OPS]
        rows = df[df["event"].isin(REGION_OPS)]
        got = [(r.event, r.hr, value(r.base), value(r.region_size), value(r.reserved_bytes),
                value(r.committed_bytes), value(r.free_type)) for r in rows.itertuples()]
        self.assertTrue(df[~df["event"].isin(REGION_OPS)]["free_type"].isna().all())

        # What the host did: its calls, rounded to pages as S4-S7 say, and its books.
        want = []
        regions = {}  # base -> size
        committed = 0
        it = iter(ops)
        for c in calls[:-1]:  # the last one is destroy
            name, ok, addr, size = c["call"], c["hr"] == "S_OK", c["address"], c["size"]
            books = (c["reserved"], c["committed"])
            ev = next(it)
            if name == "reserve_commit":
                # Two events: the reserve names the region (given back when the
                # call failed), the commit half commits all of it.
                psize = round_up(size, P)
                if ok:
                    regions[c["result"]] = psize
                    want.append(("reserve", "S_OK", c["result"], psize, c["reserved"], committed,
                                 None))
                    want.append(("commit", "S_OK", c["result"], psize) + books + (None,))
                else:
                    self.assertNotEqual(ev["base"], 0, ev)
                    want.append(("reserve", c["hr"], ev["base"], None) + books + (None,))
                    want.append(("commit", c["hr"], None, None) + books + (None,))
                next(it)
            elif not ok:
                # A refused decommit was one (the event's name says it); a refused
                # release may have had any free type (its failure says bad_type then).
                want.append((ev["event"], c["hr"], None, None) + books
                            + ((MEM_DECOMMIT,) if ev["event"] == "decommit" else (None,)))
            elif name == "reserve":
                regions[c["result"]] = round_up(size, P)
                want.append(("reserve", "S_OK", c["result"], round_up(size, P)) + books + (None,))
            elif name == "query":
                # The event carries the run it found.
                self.assertEqual(ev["base"], c["result"])
                want.append(("query", "S_OK", ev["base"], ev["region_size"]) + books + (None,))
            elif name == "release":
                base = addr - addr % P
                want.append(("release", "S_OK", base, regions.pop(base)) + books + (MEM_RELEASE,))
            elif name == "decommit" and size == 0:
                want.append(("decommit", "S_OK", addr, regions[addr]) + books + (MEM_DECOMMIT,))
            else:
                base = addr - addr % P
                want.append((name, "S_OK", base, round_up(addr + size, P) - base) + books
                            + ((MEM_DECOMMIT,) if name == "decommit" else (None,)))
            committed = c["committed"]
        self.assertEqual(got, want)

    def test_statedump(self):
        """A session started mid-run sees every live region once, before the next event."""
        proc = subprocess.Popen([WORKLOAD, "statedump"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=workload_env(), text=True)
        try:
            lines = []
            for line in proc.stdout:
                lines.append(json.loads(line))
                if lines[-1].get("ready"):
                    break
            self.assertTrue(lines and lines[-1].get("ready"), "workload did not get ready")
            with Session() as s:
                proc.stdin.write("go\n")
                proc.stdin.flush()
                rest, _ = proc.communicate(timeout=TIMEOUT)
                self.assertEqual(proc.returncode, 0)
                s.stop()
                header = lines[0]
                events, discarded = s.read(header["pid"])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(discarded, 0)
        # Another session may have recorded (and numbered) the first events.
        self.check_common(header, events, from_start=False)
        P = header["page"]
        a = lines[1]["result"]
        b = lines[2]["result"]
        dump = [e for e in events if e["event"] == "region_state"]
        seen = {(e["base"], e["region_size"], e["committed_bytes"], e["protect"]) for e in dump}
        self.assertEqual(seen, {(a, 3 * P, 3 * P, PAGE_READWRITE),
                                (b, 64 * P, 2 * P, PAGE_EXECUTE_READ)})
        for e in dump:
            self.assertTrue(header["text_lo"] <= e["caller"] < header["text_hi"], e)
        # The dump comes first: the regions were reserved before the session.
        names = [e["event"] for e in events]
        self.assertNotIn("reserve", names)
        first_other = next(i for i, n in enumerate(names) if n != "region_state")
        self.assertEqual(set(names[:first_other]), {"region_state"})
        self.assertIn("query", names)
        self.expect(events[-1], "manager_destroy", regions=2)

    def test_heap(self):
        """H4: every heap call is an event with its heap, block, size, level and
        caller (file and line for a debug allocation); refusals are failures;
        the heap's regions are named; destroy reports what was still live; and
        the analysis finds the leaks by call site and by file:line."""
        with Session() as s:
            lines = run_workload("heap")
            s.stop()
            events, discarded = s.read(lines[0]["pid"])
            summary = analyze_json(s.path)
            # The C engine joins malloc_debug to its malloc_alloc as reader.py does.
            summary_c = analyze_json(s.path, "c") if engine_lib() else None
        if summary_c is not None:
            self.assertEqual(summary_c["processes"], summary["processes"])
        self.assertEqual(discarded, 0)
        header, calls = lines[0], [l for l in lines[1:] if "call" in l]
        # malloc_debug carries the seq of the malloc_alloc after it (it takes
        # none of its own): the other events count 1, 2, ...
        debug = [e for e in events if e["event"] == "malloc_debug"]
        events = [e for e in events if e["event"] != "malloc_debug"]
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        for e in events + debug:
            self.assertEqual(set(e) - {"event", "_end"}, SCHEMA[e["event"]], e)
        heap = calls[0]["result"]
        create = [e for e in events if e["event"] == "malloc_create"]
        self.assertEqual(len(create), 1)
        self.expect(create[0], "malloc_create", manager=header["manager"], heap=heap, type=1)
        allocs = [e for e in events if e["event"] == "malloc_alloc"]
        frees = [e for e in events if e["event"] == "malloc_free"]
        filled = [l for l in lines if "filled" in l][0]["filled"]
        self.assertEqual(len(allocs), 3 + filled)
        self.assertEqual(len(frees), 2 + filled)  # NULL included, the refused one not
        for e in allocs + frees:
            self.assertEqual(e["heap"], heap)
            self.assertTrue(header["text_lo"] <= e["caller"] < header["text_hi"],
                            "caller %#x is not in the host's code: %r" % (e["caller"], e))
        self.expect(allocs[0], "malloc_alloc", address=calls[1]["result"], size=100, level="task")
        self.expect(allocs[1], "malloc_alloc", address=calls[2]["result"], size=40,
                    level="appdomain")
        self.expect(allocs[2], "malloc_alloc", address=calls[3]["result"], size=50000,
                    level="process")
        # The debug allocation's file and line: one malloc_debug, under its
        # malloc_alloc's seq, recorded just before it (only plain events between:
        # none here).
        self.assertEqual([(d["seq"], d["file"], d["line"]) for d in debug],
                         [(allocs[1]["seq"], "workload.c", 123)])
        self.assertLessEqual(debug[0]["_end"], allocs[1]["_end"])
        self.expect(frees[0], "malloc_free", address=calls[1]["result"], size=112)
        self.expect(frees[1], "malloc_free", address=0, size=0)
        failures = [e for e in events if e["event"] == "failure"]
        self.assertEqual([(f["op"], f["hr"], f["reason"]) for f in failures if f["op"].startswith("malloc")],
                         [("malloc_free", "E_INVALIDARG", "foreign_pointer"),
                          ("malloc_alloc", "E_OUTOFMEMORY", "limit_denied")])
        # Every region the heap names is one the manager reserved for it.
        reserved = {e["base"] for e in events if e["event"] == "reserve" and e["hr"] == "S_OK"}
        regions = [e for e in events if e["event"] == "malloc_region"]
        self.assertTrue(regions)
        for r in regions:
            if r["live"]:
                self.assertIn(r["base"], reserved)
        destroy = [e for e in events if e["event"] == "malloc_destroy"]
        self.expect(destroy[0], "malloc_destroy", heap=heap, live_blocks=2, live_bytes=48 + 50000)
        # This process only: a shared daemon may have recorded other hosts too.
        mine = [p for p in summary["processes"] if p["pid"] == header["pid"]]
        self.assertEqual(len(mine), 1, [p["label"] for p in summary["processes"]])
        hp = mine[0]["heap"]
        self.assertEqual((hp["leaks"]["blocks"], hp["leaks"]["bytes"]), (2, 50040))
        self.assertEqual([(e["file"], e["line"], e["blocks"]) for e in hp["leaks"]["by_file_line"]],
                         [("workload.c", 123, 1)])
        self.assertEqual(sum(e["blocks"] for e in hp["leaks"]["by_site"]), 2)
        self.assertGreater(hp["peak_committed_bytes"], 3 << 20)
        self.assertGreater(hp["share_of_committed"]["at_peak"], 0.9)

    def test_win32(self):
        """W3: every write-watch call that reached its region is a write_watch event
        (pages returned, reset flag, read or reset); a refused one only a failure; a
        guard page's first access is a guard_hit with the faulting address; the
        analysis counts them."""
        with Session() as s:
            lines = run_workload("win32")
            s.stop()
            header, calls = lines[0], lines[1:]
            if calls[0]["hr"] == "E_NOTIMPL":
                self.skipTest("this kernel has no write watch")
            events, discarded = s.read(header["pid"])
            summary = analyze_json(s.path)
        self.assertEqual(discarded, 0)
        self.check_common(header, events)
        w = calls[0]["result"]
        P = header["page"]
        ww = [e for e in events if e["event"] == "write_watch"]
        self.assertEqual(len(ww), 3)
        self.expect(ww[0], "write_watch", base=w, size=16 * P, pages=3, reset=1, read=1, hr="S_OK")
        self.expect(ww[1], "write_watch", base=w, size=16 * P, pages=0, reset=0, read=1, hr="S_OK")
        self.expect(ww[2], "write_watch", base=w, size=2 * P, pages=0, reset=1, read=0, hr="S_OK")
        self.assertGreater(ww[0]["duration_ns"], 0)
        failures = [e for e in events if e["event"] == "failure"]
        self.assertEqual([(f["op"], f["hr"], f["reason"]) for f in failures],
                         [("get_write_watch", "E_INVALIDARG", "zero_count")])
        hits = [e for e in events if e["event"] == "guard_hit"]
        self.assertEqual(len(hits), 1)
        self.expect(hits[0], "guard_hit", address=calls[-1]["address"], base=calls[-1]["result"])
        wn = summary["win32"]
        self.assertEqual(wn["write_watch"], {"reads": 2, "resets": 1, "pages": 3, "reset_pages": 3})
        self.assertEqual(wn["guard_hits"], 1)
        self.assertEqual(summary["events_by_name"]["write_watch"], 3)
        self.assertEqual(summary["events_by_name"]["guard_hit"], 1)

    def test_heap_loglevel(self):
        """The heap's events are DEBUG_SYSTEM: off at TRACE_INFO, on (without query) at
        TRACE_DEBUG_SYSTEM."""
        with Session(loglevel="TRACE_INFO") as s:
            lines = run_workload("heap")
            s.stop()
            info, _ = s.read(lines[0]["pid"])
        names = {e["event"] for e in info}
        self.assertFalse(names & {"malloc_alloc", "malloc_free"}, names)
        self.assertTrue({"malloc_create", "malloc_region", "malloc_destroy", "reserve"} <= names, names)
        with Session(loglevel="TRACE_DEBUG_SYSTEM") as s:
            lines = run_workload("heap")
            s.stop()
            debug, _ = s.read(lines[0]["pid"])
        names = {e["event"] for e in debug}
        self.assertTrue({"malloc_alloc", "malloc_free"} <= names, names)
        self.assertNotIn("query", names)

    def test_loglevel(self):
        """query is a debug event: a session at INFO and above does not get it."""
        with Session(loglevel="TRACE_INFO") as s:
            lines = run_workload("basic")
            s.stop()
            events, _ = s.read(lines[0]["pid"])
        names = {e["event"] for e in events}
        self.assertNotIn("query", names)
        self.assertTrue({"reserve", "commit", "protect", "failure", "manager_destroy"} <= names)
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(set(seqs)))

    def test_loglevel_warning(self):
        """At WARNING and above a session gets failures, decisions and state changes only."""
        with Session(loglevel="TRACE_WARNING") as s:
            lines = run_workload("limits")
            s.stop()
            events, _ = s.read(lines[0]["pid"])
        names = {e["event"] for e in events}
        self.assertTrue({"failure", "critical_decision", "memory_state"} <= names, names)
        self.assertEqual(names - {"failure", "critical_decision", "memory_state"}, set())

    def test_preloaded_provider_records_once(self):
        """A preloaded provider is used as is: libhostmem does not load its own too."""
        # A copy at another path: the loader would happily map both.
        tmp = tempfile.mkdtemp(prefix="hostmem-preload-")
        try:
            copy = os.path.join(tmp, os.path.basename(PROVIDER))
            shutil.copy(PROVIDER, copy)
            # Under ASan the runtime wants to come first; a preloaded provider
            # does not disturb it.
            asan = os.environ.get("ASAN_OPTIONS", "")
            asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
            with Session() as s:
                lines = run_workload("basic", LD_PRELOAD=copy, ASAN_OPTIONS=asan)
                s.stop()
                events, _ = s.read(lines[0]["pid"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.check_common(lines[0], events)  # each seq exactly once
        self.assertEqual(events[0]["event"], "manager_create")
        self.assertEqual(sum(e["event"] == "manager_create" for e in events), 1)

    def test_provider_disabled(self):
        """HOSTMEM_LTTNG=0, HOSTMEM_LTTNG_PROVIDER=none, or a provider that is not
        there: the host runs (and its workload checks pass) untraced."""
        for env in ({"HOSTMEM_LTTNG": "0"}, {"HOSTMEM_LTTNG_PROVIDER": "none"},
                    {"HOSTMEM_LTTNG_PROVIDER": "/nonexistent/libhostmem-lttng.so"}):
            with self.subTest(env=env):
                with Session() as s:
                    lines = run_workload("basic", **env)
                    s.stop()
                    events, _ = s.read(lines[0]["pid"])
                self.assertEqual(events, [])

    def test_fork(self):
        """A host that forks, run with liblttng-ust-fork.so preloaded (as the README
        says hosts that fork must be): the child's calls are recorded under its pid."""
        wrapper = None
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
            if os.path.exists(os.path.join(d, "liblttng-ust-fork.so")):
                wrapper = os.path.join(d, "liblttng-ust-fork.so")
        self.assertIsNotNone(wrapper, "liblttng-ust-fork.so not found (liblttng-ust-dev)")
        preload = " ".join(x for x in (os.environ.get("LD_PRELOAD", ""), wrapper) if x)
        # Under ASan the runtime wants to come first; the wrapper does not disturb it.
        asan = os.environ.get("ASAN_OPTIONS", "")
        asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        with Session() as s:
            lines = run_workload("fork", LD_PRELOAD=preload, ASAN_OPTIONS=asan)
            s.stop()
            header = lines[0]
            child = next(l["child"] for l in lines if "child" in l)
            parent_events, _ = s.read(header["pid"])
            child_events, _ = s.read(child)
        # The child registers as a new process: its first call dumps the
        # region it inherited, then its own calls follow.
        dumped = [e for e in child_events if e["event"] == "region_state"]
        calls = [e for e in child_events if e["event"] not in ("region_state", "totals")]
        self.assertEqual([e["base"] for e in dumped], [calls[0]["address"]])
        self.assertEqual([e["event"] for e in calls], ["commit", "release"])
        for e in calls:
            self.expect(e, e["event"], manager=header["manager"], hr="S_OK")
        names = [e["event"] for e in parent_events]
        self.assertEqual(names, ["manager_create", "reserve", "totals", "release",
                                 "manager_destroy"])

    def test_static_host(self):
        """A host linking the static library finds the provider in ../lib and traces alike."""
        if not WORKLOAD_STATIC:
            self.skipTest("no statically linked workload given")
        with Session() as s:
            lines = run_workload("basic", workload=WORKLOAD_STATIC)
            s.stop()
            events, _ = s.read(lines[0]["pid"])
        self.check_common(lines[0], events)
        names = [e["event"] for e in events if e["event"] not in ("region_state", "totals")]
        self.assertEqual(names[:3], ["manager_create", "reserve", "commit"])
        self.assertEqual(names[-1], "manager_destroy")

    def test_threads(self):
        """Concurrent calls: seq stays unique and gapless across threads."""
        with Session() as s:
            lines = run_workload("threads")
            s.stop()
            header = lines[0]
            events, discarded = s.read(header["pid"])
        self.assertEqual(discarded, 0)
        seqs = sorted(e["seq"] for e in events)
        self.assertEqual(seqs, list(range(1, len(events) + 1)))
        n = lines[1]["threads"] * lines[1]["rounds"]
        names = [e["event"] for e in events]
        self.assertEqual(names.count("reserve"), n)
        self.assertEqual(names.count("commit"), n)
        self.assertEqual(names.count("release"), n)
        self.assertEqual(names.count("failure"), 0)
        for e in events:
            self.assertEqual(e["manager"], header["manager"])
            if e["event"] == "reserve":
                self.assertTrue(header["text_lo"] <= e["caller"] < header["text_hi"], e)
        # seq is taken where each call took effect: in seq order, the threads'
        # regions at one address follow each other whole (reserve, commit,
        # release, then the next reserve there), whichever thread emitted first.
        at = {}
        for e in sorted(events, key=lambda e: e["seq"]):
            if e["event"] == "reserve":
                key = e["base"]
            elif e["event"] in ("commit", "release"):
                key = e["address"]
            else:
                continue
            at.setdefault(key, []).append(e["event"])
        for base, names in at.items():
            self.assertEqual(names, ["reserve", "commit", "release"] * (len(names) // 3),
                             "at %#x, in seq order: %s" % (base, names))


def main():
    global WORKLOAD, WORKLOAD_STATIC, PROVIDER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--workload-static", help="the workload linked with the static library")
    parser.add_argument("--provider", required=True)
    args, rest = parser.parse_known_args()
    WORKLOAD, PROVIDER = os.path.abspath(args.workload), os.path.abspath(args.provider)
    if args.workload_static:
        WORKLOAD_STATIC = os.path.abspath(args.workload_static)
    if shutil.which("lttng") is None:
        print("test_trace.py: lttng (lttng-tools) not found (scripts/setup installs it)", file=sys.stderr)
        sys.exit(1)
    ensure_sessiond()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
