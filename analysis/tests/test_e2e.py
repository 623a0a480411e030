#!/usr/bin/python3
"""End-to-end: record the scripted host in real LTTng sessions and check what
hostmem-analyze reports against what the host says it did (expect.json).

Needs lttng-tools (a session daemon is started when none runs), the build's
libhostmem.so with libhostmem-lttng.so next to it, and
HOSTMEM_SCRIPTED_HOST=path/to/hostmem_scripted_host.  Exits 77 (skipped)
when LTTng is not usable here.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from xml.etree import ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYSIS = os.path.dirname(HERE)
sys.path.insert(0, ANALYSIS)
from hostmem_analysis.sessiond import ensure_sessiond  # noqa: E402
TOOL = os.path.join(ANALYSIS, "hostmem-analyze")
HOST = os.environ.get("HOSTMEM_SCRIPTED_HOST")
HOST_TIMEOUT = int(os.environ.get("HOSTMEM_E2E_HOST_TIMEOUT", "60"))  # a healthy run takes ms


def lttng(*args, check=True):
    r = subprocess.run(["lttng", "--no-sessiond"] + list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("lttng %s: %s" % (" ".join(args), r.stderr.strip() or r.stdout))
    return r


CONTEXTS = ("vpid", "vtid", "procname")


class Session:
    """One uniquely named session writing under `out`, recording only the
    processes `pids` (the machine may run other programs that use hostmem),
    destroyed on exit."""

    def __init__(self, out, pids, events=("hostmem:*", "lttng_ust_statedump:*"), subbuf="4M",
                 contexts=CONTEXTS):
        self.name = "hostmem-analysis-%d-%s" % (os.getpid(), os.path.basename(out))
        self.out = out
        self.pids = pids
        self.events = events
        self.subbuf = subbuf
        self.contexts = contexts

    def __enter__(self):
        lttng("create", self.name, "--output=" + self.out)
        try:
            lttng("enable-channel", "-u", "ch", "-s", self.name, "--subbuf-size=" + self.subbuf,
                  "--num-subbuf=8")
            for ev in self.events:
                lttng("enable-event", "-u", ev, "-s", self.name, "-c", "ch")
            types = [a for c in self.contexts for a in ("-t", c)]
            lttng("add-context", "-u", "-s", self.name, "-c", "ch", *types)
            lttng("untrack", "-u", "-s", self.name, "--vpid", "--all")
            for pid in self.pids:
                lttng("track", "-u", "-s", self.name, "--vpid=%d" % pid)
            lttng("start", self.name)
        except BaseException:
            lttng("destroy", self.name, check=False)
            raise
        return self

    def __exit__(self, *exc):
        lttng("stop", self.name, check=False)
        lttng("destroy", self.name, check=False)


class Host:
    """The scripted host, started and waiting for the session ("ready")."""

    def __init__(self, *args, env=None):
        self.args = args
        self.p = subprocess.Popen([HOST] + list(args), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env)
        self.pid = self.p.pid
        line = self.p.stdout.readline().strip()
        if line != "ready":
            self.kill()
            raise AssertionError("scripted_host %s: %r" % (" ".join(args), line))

    def go(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def wait(self):
        try:
            _, err = self.p.communicate(timeout=HOST_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("scripted_host %s hung for %d s (a library bug: it never "
                                 "should)" % (" ".join(self.args), HOST_TIMEOUT))
        if self.p.returncode != 0:
            raise AssertionError("scripted_host %s failed: %s" % (" ".join(self.args), err))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate()


def record(trace, *hosts_args, events=("hostmem:*", "lttng_ust_statedump:*"), subbuf="4M",
           env=None, contexts=CONTEXTS):
    """Run hosts (each an argument tuple, in environment `env`) while a
    session records only them, with these contexts."""
    hosts = []
    try:
        for args in hosts_args:
            hosts.append(Host(*args, env=env))
        with Session(trace, [h.pid for h in hosts], events, subbuf, contexts):
            for h in hosts:
                h.go()
            for h in hosts:
                h.wait()
    finally:
        for h in hosts:
            h.kill()
    return [h.pid for h in hosts]


def as_other_host(trace, dst):
    """A copy of `trace` at `dst` that reads as recorded on another host:
    the hostname and the trace's UUID rewritten in place (same lengths) in
    the metadata and the packet headers, and its clock 1 ms off (no event
    of the copy has the time of one of the original).  Returns (old, new)
    hostnames."""
    import re
    shutil.copytree(trace, dst)
    names = None
    for root, _, files in os.walk(dst):
        if "metadata" not in files:
            continue
        meta = os.path.join(root, "metadata")
        with open(meta, "rb") as f:
            data = f.read()
        old = re.search(rb'hostname = "([^"]*)";', data).group(1)
        new = bytes(ord("b") if c == ord("a") else ord("a") for c in old)
        uuid = re.search(rb'uuid = "([0-9a-f-]{36})";', data).group(1)  # the trace's, first
        other = uuid[:-1] + (b"1" if uuid[-1:] == b"0" else b"0")
        raw, raw_other = (bytes.fromhex(u.decode().replace("-", "")) for u in (uuid, other))
        data = data.replace(b'hostname = "%s";' % old, b'hostname = "%s";' % new)
        offset = re.search(rb"\boffset = (\d{7,});", data)
        digits = bytearray(offset.group(1))
        digits[-7] += 1 if digits[-7] < ord("9") else -1  # the ms digit
        data = data[:offset.start(1)] + bytes(digits) + data[offset.end(1):]
        with open(meta, "wb") as f:
            f.write(data.replace(uuid, other).replace(raw, raw_other))
        for name in files:
            if name != "metadata":  # a stream
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    data = f.read()
                with open(path, "wb") as f:
                    f.write(data.replace(raw, raw_other))
        names = (old.decode(), new.decode())
    return names


def analyze(*args, env=None, cwd=None):
    r = subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                       timeout=300, env=env, cwd=cwd)
    return r


def analyze_both(*args, strict=True, same_stderr=True):
    """`hostmem-analyze ARGS` with the C engine and with --engine python: the
    differential test of the engines.  Both must exit alike, say the same on
    stderr (unless `same_stderr` is false: a Dask client may log its own
    timeouts there on a loaded machine) and print the same summary (as JSON,
    exactly).  `strict`: the C engine must read the input itself (no
    fallback to babeltrace2)."""
    env = dict(os.environ)
    if strict:
        env["HOSTMEM_ANALYZE_ENGINE_STRICT"] = "1"
    c = analyze(*args, env=env)
    if os.environ.get("HOSTMEM_E2E_ENGINES", "both") != "both":
        return c  # the C engine alone (the sanitizer builds: see CMakeLists.txt)
    py = analyze(args[0], "--engine", "python", *args[1:])
    if (c.returncode, c.stderr if same_stderr else "") != (py.returncode, py.stderr if same_stderr else ""):
        raise AssertionError("the engines differ on %s: C exit %d %r, Python exit %d %r"
                             % (" ".join(args), c.returncode, c.stderr, py.returncode, py.stderr))
    if "--json" in args and c.stdout:
        a, b = json.loads(c.stdout), json.loads(py.stdout)
        if a != b:
            raise AssertionError("the engines' summaries of %s differ:\n%s"
                                 % (" ".join(args), "\n".join(json_diff(b, a)[:20])))
    return c


def json_diff(a, b, path=""):
    """The first lines where two JSON values differ (a: Python engine, b: C)."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                out.extend(json_diff(a.get(k, "<absent>"), b.get(k, "<absent>"), path + "." + str(k)))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                out.extend(json_diff(x, y, "%s[%d]" % (path, i)))
    else:
        out.append("%s: python %r, C %r" % (path or ".", a, b))
    return out


def summary_json(trace):
    r = analyze_both("summary", "--json", trace)
    if r.returncode != 0:
        raise AssertionError("hostmem-analyze failed: %s" % r.stderr)
    return json.loads(r.stdout)


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-analysis-e2e.")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def record_scripted(self, name, mode):
        """Record the scripted host alone in `mode` as trace `name`: the trace,
        the host's pid and what the host says it did."""
        trace = os.path.join(self.tmp, name)
        expect = trace + ".json"
        (pid,) = record(trace, (mode, expect))
        with open(expect) as f:
            return trace, pid, json.load(f)

    def check_against(self, got, exp):
        for op, e in exp["ops"].items():
            g = got["ops"][op]
            self.assertEqual((g["count"], g["failed"], g["bytes"]),
                             (e["count"], e["failed"], e["bytes"]), op)
            if e["count"]:
                self.assertGreater(g["latency_ns"]["max"], 0, op)
        for hr, n in exp["failures"]["by_hresult"].items():
            self.assertEqual(got["failures"]["by_hresult"].get(hr, 0), n, hr)
        for lv, n in exp["failures"]["by_level"].items():
            self.assertEqual(got["failures"]["by_level"].get(lv, 0), n, lv)
        for d, n in exp["critical_decisions"].items():
            self.assertEqual(got["critical_decisions"][d], n, d)
        for k in ("peak_committed_bytes", "peak_reserved_bytes", "end_committed_bytes",
                  "end_reserved_bytes"):
            self.assertEqual(got[k], exp[k], k)
        for k in ("regions", "reserved_bytes", "committed_bytes"):
            self.assertEqual(got["leaks"][k], exp["leaks"][k], "leaks." + k)

    def test_scripted_host(self):
        trace, pid, exp = self.record_scripted("run", "run")
        got = summary_json(trace)
        self.assertEqual(got["processes"][0]["pid"], pid)
        self.assertEqual((got["discarded_events"], got["seq_gaps"]), (0, 0))
        self.assertEqual(len(got["processes"]), 1)
        self.assertEqual(got["processes"][0]["procname"], "hostmem_scripte")
        self.check_against(got, exp)
        self.check_against(got["processes"][0], exp)
        # Leak call sites resolved through the statedump and addr2line.
        sites = {e["site"].split(" ")[0]: e["regions"] for e in got["leaks"]["by_caller"]}
        for fn, n in exp["leak_sites"].items():
            self.assertEqual(sites.get(fn), n, "%s in %s" % (fn, sites))
        self.assertTrue(any("scripted_host.c:" in e["site"] for e in got["leaks"]["by_caller"]))
        # The text summary and the report from the same trace.
        r = analyze("summary", trace)
        self.assertEqual(r.returncode, 0, r.stderr)
        # T8: the host exits without hostmem_destroy, so the trace is not
        # complete, and that is the only reason.
        self.assertEqual(len(got["trust"]["reasons"]), 1, got["trust"])
        self.assertIn("1 manager never destroyed", got["trust"]["reasons"][0])
        banner = r.stdout.splitlines()[2]
        self.assertTrue(banner.startswith("WARNING: INCOMPLETE TRACE: "), r.stdout)
        self.assertIn("hostmem_scripte[%d]: 1 manager never destroyed" % pid, banner)
        self.assertIn("leak_site_b", r.stdout)
        out = os.path.join(self.tmp, "report")
        r = analyze("report", "-q", trace, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        texts = {}
        for name in ("memory.svg", "latency.svg", "failures.svg", "leaks.svg", "sizes.svg"):
            root = ElementTree.parse(os.path.join(out, name)).getroot()  # well-formed SVG
            self.assertEqual(root.tag, "{http://www.w3.org/2000/svg}svg", name)
            texts[name] = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
            if name == "memory.svg":  # both series drawn: an outline each
                strokes = {e.get("stroke") for e in root.iter("{http://www.w3.org/2000/svg}path")}
                self.assertLessEqual({"#4c72b0", "#dd8452"}, strokes)
        for d in got["failures"]["detail"]:
            self.assertIn("%s: %s (%s)" % (d["op"], d["hresult"], d["reason"]),
                          texts["failures.svg"])
        for site in got["leaks"]["by_caller"]:
            self.assertTrue(any(t and site["site"][-50:] in t for t in texts["leaks.svg"]), site)
        for op in ("reserve", "commit"):
            self.assertTrue(any(t and t.startswith(op + " (") for t in texts["latency.svg"]), op)
        with open(os.path.join(out, "index.html")) as f:
            page = f.read()
        # R5: index.html alone is the report (it opens offline, sent on its
        # own): every plot inline, no reference to a file beside it or afar.
        import re
        refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page)
        self.assertTrue(refs, page[:2000])
        self.assertEqual([r for r in refs if not r.startswith("#")], [])
        self.assertNotIn("url(", page.replace("url(#", ""))
        self.assertEqual(page.count('<svg class="plot"'), 5)
        for name, want in texts.items():
            svg = re.search(r'<h2 id="%s">.*?(<svg class="plot".*?</svg>)' % name[:-4], page,
                            re.S).group(1)
            root = ElementTree.fromstring(svg)
            self.assertEqual([t.text for t in root.iter("{http://www.w3.org/2000/svg}text")],
                             want, name)
        self.assertIn("leak_site_a", page)

    def test_threads_on_one_manager_peak_as_the_library(self):
        """R1: four threads on one manager; the peaks are the library's,
        exactly.  Each hostmem:totals event is read while other threads'
        calls are in flight (charged, their events still to come): the
        replay of a manager it saw from its creation keeps its own totals
        (following those events, it counted such calls twice)."""
        trace, _, exp = self.record_scripted("threads", "threads")
        got = summary_json(trace)
        self.assertTrue(got["trust"]["complete"], got["trust"])
        self.assertGreater(got["events_by_name"].get("totals", 0), 4)
        self.assertEqual(got["ops"]["reserve"]["count"], exp["regions"])
        for k in ("peak_reserved_bytes", "peak_committed_bytes"):
            self.assertEqual(got[k], exp[k], k)
        self.assertEqual((got["end_reserved_bytes"], got["end_committed_bytes"]), (0, 0))

    def test_calls_without_a_manager_name_no_manager(self):
        """T8: a reserve with a NULL manager and a refused hostmem_create
        trace manager 0; their failures count, but 0 is no manager (it was
        counted as one never destroyed, and this complete trace read as
        incomplete)."""
        trace = os.path.join(self.tmp, "nullmgr")
        record(trace, ("nullmgr",))
        got = summary_json(trace)
        self.assertEqual(got["trust"], {"complete": True, "reasons": [], "duplicates": []})
        self.assertEqual((got["managers"], got["processes"][0]["managers"]), (1, 1))
        self.assertEqual(got["failures"]["by_hresult"], {"E_POINTER": 1, "E_INVALIDARG": 1})
        self.assertEqual(got["failures"]["by_op"], {"reserve": 1, "create": 1})
        self.assertEqual((got["ops"]["reserve"]["count"], got["ops"]["reserve"]["failed"]),
                         (2, 1))
        self.assertEqual(got["leaks"]["regions"], 0)

    def test_two_processes_kept_apart(self):
        trace = os.path.join(self.tmp, "two")
        exps = [os.path.join(self.tmp, "two-%d.json" % i) for i in range(2)]
        pids = record(trace, ("run", exps[0]), ("run", exps[1]))
        exp = []
        for path in exps:
            with open(path) as f:
                exp.append(json.load(f))
        got = summary_json(trace)
        self.assertEqual(sorted(p["pid"] for p in got["processes"]), sorted(pids))
        by_pid = {p["pid"]: p for p in got["processes"]}
        for pid, e in zip(pids, exp):
            self.check_against(by_pid[pid], e)
        self.assertEqual(got["ops"]["reserve"]["count"],
                         sum(e["ops"]["reserve"]["count"] for e in exp))
        self.assertEqual(got["leaks"]["regions"], sum(e["leaks"]["regions"] for e in exp))

    def test_session_attached_mid_run_finds_leaks_through_region_state(self):
        trace, _, exp = self.record_scripted("mid", "midrun")
        got = summary_json(trace)
        for k in ("regions", "reserved_bytes", "committed_bytes"):
            self.assertEqual(got["leaks"][k], exp["leaks"][k], "leaks." + k)
        self.assertEqual(got["leaks"]["from_statedump"], 3)
        self.assertEqual(got["untracked_ops"], 0)
        self.assertEqual(got["end_reserved_bytes"], exp["end_reserved_bytes"])

    def test_export_books_of_a_manager_met_late(self):
        """T1, T6: a session attached mid-run meets the manager after its
        creation.  The export names the range of a region its statedump showed,
        leaves the manager's books empty on the rows before its first
        hostmem:totals (the replay does not know them yet) and gives them after,
        as hostmem_get_stats has them; both engines write the same table."""
        import csv
        import gzip
        trace, _, exp = self.record_scripted("mid-export", "midrun")
        tables = []
        for engine, env in (((), dict(os.environ, HOSTMEM_ANALYZE_ENGINE_STRICT="1")),
                            (("--engine", "python"), None)):
            out = os.path.join(self.tmp, "mid-export%s.csv.gz" % "".join(engine))
            r = analyze("export", *engine, trace, "-o", out, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            with gzip.open(out, "rt") as f:
                tables.append(list(csv.DictReader(f)))
        self.assertEqual(tables[0], tables[1])
        ops = [row for row in tables[0] if row["event"] in ("reserve", "release")]
        self.assertEqual([row["event"] for row in ops], ["release", "reserve"])
        release, reserve = ops
        self.assertEqual((release["hr"], release["base"], release["region_size"]),
                         ("S_OK", release["address"], str(512 * 1024)))
        self.assertEqual((release["reserved_bytes"], release["committed_bytes"]), ("", ""))
        self.assertEqual((reserve["hr"], reserve["region_size"]), ("S_OK", str(1024 * 1024)))
        self.assertEqual((reserve["reserved_bytes"], reserve["committed_bytes"]),
                         (str(exp["end_reserved_bytes"]), str(exp["end_committed_bytes"])))

    def test_profile_records_the_command_and_passes_its_status(self):
        profile = os.path.join(ANALYSIS, "hostmem-profile")
        out = os.path.join(self.tmp, "profile")
        r = subprocess.run([sys.executable, profile, "-o", out, "--", HOST, "churn", "100"],
                           input="go\n", capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ready\n")  # stdout stays the command's
        self.assertIn("Trust: complete", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "report", "index.html")))
        with open(os.path.join(out, "report", "summary.json")) as f:
            s = json.load(f)
        self.assertEqual(len(s["processes"]), 1)
        self.assertEqual(s["ops"]["reserve"]["count"], 100)
        self.assertEqual(s["ops"]["release"]["count"], 100)
        self.assertEqual(s["leaks"]["regions"], 0)
        r = subprocess.run([sys.executable, profile, "-o", os.path.join(self.tmp, "p3"), "--",
                            "/bin/sh", "-c", "exit 3"], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("recorded no hostmem events", r.stderr)

    def test_export_csv_and_perfetto(self):
        """R7: the flat table reads back in pandas; the Perfetto JSON loads and
        holds the documented counters and instants."""
        trace = os.path.join(self.tmp, "export")
        (pid,) = record(trace, ("run", os.path.join(self.tmp, "export.json")))
        s = summary_json(trace)
        csv_path = os.path.join(self.tmp, "events.csv.gz")
        # through the C engine (strict: no fallback), then through babeltrace2: the same table
        r = analyze("export", trace, "-o", csv_path,
                    env=dict(os.environ, HOSTMEM_ANALYZE_ENGINE_STRICT="1"))
        self.assertEqual(r.returncode, 0, r.stderr)
        py_path = os.path.join(self.tmp, "events-python.csv.gz")
        r = analyze("export", "--engine", "python", trace, "-o", py_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        # --scheduler is for summary and report: refused in one line, nothing written
        bad = os.path.join(self.tmp, "events-scheduler.csv.gz")
        r = analyze("export", "--scheduler", "tcp://127.0.0.1:1", trace, "-o", bad)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("--scheduler", r.stderr)
        self.assertFalse(os.path.exists(bad))
        import gzip
        with gzip.open(csv_path, "rt") as a, gzip.open(py_path, "rt") as b:
            self.assertEqual(a.read(), b.read())
        from hostmem_analysis import export
        try:
            import pandas as pd
        except ImportError:
            self.skipTest("python3-pandas is not installed")
        ints = {c: "UInt64" for c in ("seq", "manager", "address", "size", "base", "caller",
                                      "duration_ns", "committed_bytes", "reserved_bytes")}
        df = pd.read_csv(csv_path, compression="gzip", dtype=ints)
        self.assertEqual(tuple(df.columns), export.COLUMNS)
        self.assertEqual(len(df), s["events"])
        self.assertEqual(df["event"].value_counts().to_dict(), s["events_by_name"])
        self.assertEqual(set(df["pid"]), {pid})
        self.assertTrue(df["ts_ns"].is_monotonic_increasing)
        self.assertEqual(sorted(df["seq"].tolist()), list(range(1, len(df) + 1)))
        fails = df[df["event"] == "failure"]["hr"].value_counts().to_dict()
        self.assertEqual(fails, s["failures"]["by_hresult"])
        ops = df[df["event"].isin(["reserve", "commit", "decommit", "release", "protect",
                                   "reset"])]
        failed = ops[ops["hr"] != "S_OK"]["event"].value_counts().to_dict()
        self.assertEqual(failed, {op: o["failed"] for op, o in s["ops"].items() if o["failed"]})
        self.assertTrue((df[df["event"] == "reserve"]["duration_ns"] > 0).all())

        pf = os.path.join(self.tmp, "events.json")
        r = analyze("export", "--perfetto", trace, "-o", pf)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(pf) as f:
            doc = json.load(f)
        evs = doc["traceEvents"]
        committed = [e for e in evs if e["ph"] == "C" and e["name"] == "committed_bytes"]
        reserved = [e for e in evs if e["ph"] == "C" and e["name"] == "reserved_bytes"]
        self.assertTrue(committed and reserved)
        self.assertEqual({e["pid"] for e in committed + reserved}, {pid})
        self.assertEqual(max(e["args"]["committed_bytes"] for e in committed),
                         s["peak_committed_bytes"])
        self.assertEqual(max(e["args"]["reserved_bytes"] for e in reserved),
                         s["peak_reserved_bytes"])
        self.assertEqual(committed[-1]["args"]["committed_bytes"], s["end_committed_bytes"])
        instants = [e for e in evs if e["ph"] == "i"]
        dec = s["critical_decisions"]
        self.assertEqual(sum(1 for e in instants if e["cat"] == "failure"), s["failures"]["total"])
        self.assertEqual(sum(1 for e in instants if e["cat"] == "decision"),
                         dec["granted"] + dec["granted_from_reserve"] + dec["denied"])
        self.assertTrue(any(e["ph"] == "M" and e["pid"] == pid for e in evs))

    def test_export_names_processes_and_keeps_hosts_apart(self):
        """R2, R7: the same pid on two hosts is two Perfetto processes, each
        named host/procname[pid]; without the procname context (as
        hostmem-profile records), every row and process still has the name
        the statedump gives (the CSV's was empty, Perfetto's "?", and both
        hosts' counters went to one process)."""
        import csv
        import gzip
        trace = os.path.join(self.tmp, "named")
        (pid,) = record(trace, ("run", os.path.join(self.tmp, "named.json")),
                        contexts=("vpid",))
        other = os.path.join(self.tmp, "named-elsewhere")
        host, host2 = as_other_host(trace, other)
        r = analyze_both("summary", "--json", trace, other)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(sorted((p["host"], p["pid"], p["procname"]) for p in s["processes"]),
                         sorted([(host, pid, "hostmem_scripte"), (host2, pid, "hostmem_scripte")]))
        peaks = {p["host"]: p["peak_committed_bytes"] for p in s["processes"]}

        tables = []
        for engine, env in (((), dict(os.environ, HOSTMEM_ANALYZE_ENGINE_STRICT="1")),
                            (("--engine", "python"), None)):
            out = os.path.join(self.tmp, "named%s.csv.gz" % "".join(engine))
            r = analyze("export", *engine, trace, other, "-o", out, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            with gzip.open(out, "rt") as f:
                tables.append(list(csv.DictReader(f)))
        self.assertEqual(tables[0], tables[1])
        self.assertEqual(len(tables[0]), s["events"])
        self.assertEqual({(row["host"], row["procname"]) for row in tables[0]},
                         {(host, "hostmem_scripte"), (host2, "hostmem_scripte")})

        pf = os.path.join(self.tmp, "named.json")
        r = analyze("export", "--perfetto", trace, other, "-o", pf)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(pf) as f:
            evs = json.load(f)["traceEvents"]
        names = {e["pid"]: e["args"] for e in evs if e["ph"] == "M" and e["name"] == "process_name"}
        self.assertEqual(len(names), 2, names)
        self.assertIn(pid, names)
        self.assertEqual(sorted(a["name"] for a in names.values()),
                         sorted("%s/hostmem_scripte[%d]" % (h, pid) for h in (host, host2)))
        self.assertEqual({a["pid"] for a in names.values()}, {pid})
        self.assertGreater(max(names), 4194304)  # above every Linux pid
        for ppid, a in names.items():
            committed = [e["args"]["committed_bytes"] for e in evs
                         if e["ph"] == "C" and e["pid"] == ppid and e["name"] == "committed_bytes"]
            self.assertEqual(max(committed), peaks[a["host"]], a)

    def test_bad_input_one_line_errors(self):
        empty = os.path.join(self.tmp, "not-a-trace")
        os.makedirs(empty, exist_ok=True)
        with open(os.path.join(empty, "notes.txt"), "w") as f:
            f.write("hello\n")
        # A trace without hostmem events: only the statedump of a program
        # that does not use hostmem.
        other = os.path.join(self.tmp, "other")
        record(other, ("churn", "1"), events=("lttng_ust_statedump:*",))
        # Metadata that is not CTF at all.
        junk = os.path.join(self.tmp, "junk")
        os.makedirs(junk, exist_ok=True)
        with open(os.path.join(junk, "metadata"), "w") as f:
            f.write("this is not a trace\n")
        with open(os.path.join(junk, "ch_0"), "wb") as f:
            f.write(b"\0" * 100)
        for path, words in ((empty, "not an LTTng trace"),
                            (os.path.join(self.tmp, "missing"), "no such file"),
                            (other, "no hostmem events"),
                            (junk, "junk")):
            r = analyze("summary", path)
            self.assertNotEqual(r.returncode, 0, path)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn(words, lines[0])
            self.assertTrue(lines[0].startswith("hostmem-analyze: "), lines[0])


def streams_of(trace):
    return sorted(os.path.join(r, f) for r, _, fs in os.walk(trace) for f in fs
                  if f.startswith("ch_") and "index" not in r)


def biggest_stream(trace):
    return max(streams_of(trace), key=os.path.getsize)


def fresh_copy(trace, tmp, name):
    """A copy of `trace` at tmp/name, made anew."""
    dst = os.path.join(tmp, name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(trace, dst)
    return dst


def packet_ends(path):
    """Byte offsets where each whole packet of a stream file ends."""
    import struct
    ends, off, size = [], 0, os.path.getsize(path)
    with open(path, "rb") as f:
        while off < size:
            f.seek(off + 56)
            (bits,) = struct.unpack("<Q", f.read(8))
            off += bits // 8
            ends.append(off)
    return ends


class DamagedInput(unittest.TestCase):
    """R4: the summary of what precedes the damage, marked incomplete,
    a message naming the file; a trace given twice is read once."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-analysis-damage.")
        cls.trace = os.path.join(cls.tmp, "intact")
        # Small sub-buffers: several packets in the busiest stream, none lost.
        record(cls.trace, ("churn", "4000"), subbuf="256K")
        cls.intact = summary_json(cls.trace)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def copy(self, name):
        return fresh_copy(self.trace, self.tmp, name)

    def damaged_summary(self, trace):
        r = analyze_both("summary", "--json", trace, strict=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        return json.loads(r.stdout), lines[0]

    def test_intact_trace_is_complete(self):
        self.assertEqual(self.intact["trust"], {"complete": True, "reasons": [],
                                                "duplicates": []})
        self.assertEqual(self.intact["ops"]["reserve"]["count"], 4000)

    def test_stream_cut_mid_packet(self):
        cut = self.copy("cut")
        s = biggest_stream(cut)
        ends = packet_ends(s)
        self.assertGreaterEqual(len(ends), 2, "the stream has a single packet")
        # The same trace cut exactly after its second-to-last packet is whole:
        # it is what the damaged one must summarise.
        whole = self.copy("cut-whole")
        with open(biggest_stream(whole), "r+b") as f:
            f.truncate(ends[-2])
        shutil.rmtree(os.path.join(os.path.dirname(biggest_stream(whole)), "index"),
                      ignore_errors=True)
        want = summary_json(whole)
        with open(s, "r+b") as f:
            f.truncate(ends[-2] + (ends[-1] - ends[-2]) // 2)
        got, line = self.damaged_summary(cut)
        self.assertIn(s, line)
        self.assertIn("cut mid-packet", line)
        self.assertFalse(got["trust"]["complete"])
        self.assertTrue(any(s in r and "cut mid-packet" in r for r in got["trust"]["reasons"]),
                        got["trust"])
        for k in ("events", "peak_committed_bytes", "peak_reserved_bytes", "end_reserved_bytes"):
            self.assertEqual(got[k], want[k], k)
        self.assertEqual(got["ops"], want["ops"])
        self.assertLess(got["events"], self.intact["events"])
        self.assertGreater(got["events"], 0)

    def test_garbage_appended(self):
        bad = self.copy("garbage")
        s = biggest_stream(bad)
        with open(s, "ab") as f:
            f.write(os.urandom(5000))
        got, line = self.damaged_summary(bad)
        self.assertIn(s, line)
        self.assertIn("garbage after byte", line)
        self.assertFalse(got["trust"]["complete"])
        # Every event was before the garbage.
        self.assertEqual(got["ops"], self.intact["ops"])
        self.assertEqual(got["events"], self.intact["events"])

    def test_metadata_cut(self):
        bad = self.copy("metadata-cut")
        meta = os.path.join(os.path.dirname(biggest_stream(bad)), "metadata")
        # Cut inside the last declaration: the event classes before it stay.
        with open(meta, "r+b") as f:
            f.truncate(os.path.getsize(meta) - 40)
        got, line = self.damaged_summary(bad)
        self.assertIn(meta, line)
        self.assertIn("metadata cut", line)
        self.assertFalse(got["trust"]["complete"])
        self.assertGreater(got["ops"]["reserve"]["count"], 0)
        self.assertLessEqual(got["events"], self.intact["events"])

    def test_same_trace_twice_is_read_once(self):
        twin = self.copy("twin")
        for args in ((self.trace, self.trace), (self.trace, twin)):
            r = analyze_both("summary", "--json", *args)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = json.loads(r.stdout)
            self.assertEqual(got["events"], self.intact["events"])
            self.assertEqual(got["ops"], self.intact["ops"])
            self.assertIn("the same trace as", r.stderr)
            self.assertEqual(len(got["trust"]["duplicates"]), 1)
            self.assertTrue(got["trust"]["complete"])


class Input(unittest.TestCase):
    """What is given to read: a file that is no trace, copies of one trace
    (incomplete or damaged), one damaged or unreadable trace among others,
    damage before any event; in both engines."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-analysis-input.")
        cls.trace = os.path.join(cls.tmp, "intact")
        record(cls.trace, ("churn", "4000"), subbuf="256K")
        cls.intact = summary_json(cls.trace)
        cls.other = os.path.join(cls.tmp, "other")
        as_other_host(cls.trace, cls.other)
        cls.both = json.loads(analyze_both("summary", "--json", cls.trace, cls.other).stdout)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def copy(self, name):
        dst = fresh_copy(self.trace, self.tmp, name)
        return dst, biggest_stream(dst)

    def run_both(self, *args, code):
        r = analyze_both("summary", "--json", *args, strict=False)
        self.assertEqual(r.returncode, code, r.stderr)
        return (json.loads(r.stdout) if r.stdout else None), r.stderr

    def test_a_file_is_no_trace_but_its_metadata(self):
        notes = os.path.join(self.trace, "notes.txt")
        with open(notes, "w") as f:
            f.write("x\n")
        try:
            _, err = self.run_both(notes, code=2)
            self.assertEqual(err, "hostmem-analyze: %s: not an LTTng trace\n" % notes)
        finally:
            os.unlink(notes)
        meta = os.path.join(os.path.dirname(max(streams_of(self.trace))), "metadata")
        got, _ = self.run_both(meta, code=0)
        self.assertEqual(got["events"], self.intact["events"])

    def test_a_copy_lacking_a_stream_is_the_same_trace(self):
        part, stream = self.copy("part")
        os.unlink(stream)
        for jobs in ("1", "2"):
            for args in ((self.trace, part), (part, self.trace)):
                got, err = self.run_both("-j", jobs, *args, code=0)
                self.assertEqual(got["events"], self.intact["events"], (jobs, args))
                self.assertEqual(got["ops"], self.intact["ops"])
                self.assertEqual(got["peak_committed_bytes"], self.intact["peak_committed_bytes"])
                self.assertTrue(got["trust"]["complete"], got["trust"])
                self.assertEqual(len(got["trust"]["duplicates"]), 1, got["trust"])
                self.assertIn("the same trace as", err)

    def test_the_most_complete_copy_is_read(self):
        for name, damage in (("empty", lambda f, ends: f.truncate(0)),
                             ("cut", lambda f, ends: f.truncate(ends[0] + 100))):
            bad, stream = self.copy(name)
            with open(stream, "r+b") as f:
                damage(f, packet_ends(stream))
            for args in ((bad, self.trace), (self.trace, bad)):
                got, err = self.run_both(*args, code=0)
                self.assertEqual(got["events"], self.intact["events"], (name, args))
                self.assertEqual(got["ops"], self.intact["ops"])
                self.assertTrue(got["trust"]["complete"], got["trust"])
                dup, = got["trust"]["duplicates"]
                self.assertTrue(dup.startswith(bad) and dup.endswith("this copy is ignored"), dup)

    def test_damage_stops_only_its_trace(self):
        bad, stream = self.copy("garbled")
        ends = packet_ends(stream)
        # Garbage inside the first packet's events: decoding of that stream stops there.
        with open(stream, "r+b") as f:
            f.seek(ends[0] // 2)
            f.write(b"\xff" * 4096)
        alone, _ = self.run_both(bad, code=3)
        for jobs in ("1", "2"):
            got, err = self.run_both("-j", jobs, bad, self.other, code=3)
            self.assertFalse(got["trust"]["complete"])
            self.assertEqual(got["ops"]["reserve"]["count"],
                             alone["ops"]["reserve"]["count"] + 4000, jobs)
            self.assertNotIn("method failed", err)

    def test_an_unreadable_trace_among_others(self):
        for name, cut in (("meta-empty", 0), ("meta-cut", 20)):
            bad, stream = self.copy(name)
            meta = os.path.join(os.path.dirname(stream), "metadata")
            with open(meta, "r+b") as f:
                f.truncate(cut)
            for jobs in ("1", "2"):
                got, err = self.run_both("-j", jobs, bad, self.other, code=3)
                self.assertFalse(got["trust"]["complete"])
                self.assertEqual(got["ops"]["reserve"]["count"], 4000)
                self.assertTrue(any(x.startswith(os.path.dirname(meta))
                                    for x in got["trust"]["reasons"]), got["trust"])
                self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_damage_before_any_event_is_said(self):
        bad, stream = self.copy("garbage-first")
        for s in streams_of(bad):
            with open(s, "r+b") as f:
                f.write(os.urandom(64))
        _, err = self.run_both(bad, code=2)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(any(s + ": garbage after byte 0" in lines[0] for s in streams_of(bad)),
                        lines[0])
        self.assertNotIn("was 'hostmem:*' enabled", err)

    def test_a_packet_repeated_is_damage(self):
        bad, stream = self.copy("repeated")
        ends = packet_ends(stream)
        with open(stream, "rb") as f:
            first = f.read(ends[0])
        with open(stream, "ab") as f:
            f.write(first)
        got, err = self.run_both(bad, code=3)
        self.assertEqual(got["events"], self.intact["events"])
        self.assertEqual(got["ops"], self.intact["ops"])
        self.assertFalse(got["trust"]["complete"])
        self.assertTrue(any(x.startswith(stream + ": packet at byte %d out of sequence" % ends[-1])
                            for x in got["trust"]["reasons"]), got["trust"])
        self.assertNotIn("packets lost", json.dumps(got))


    def export(self, *args, code, perfetto=False):
        """`export ARGS` (the CSV, or --perfetto) with the C engine (it may
        hand damage to babeltrace2) and with --engine python: both exit
        `code`, say the same on stderr, and write the same; returns (the CSV's
        rows as dicts, or the Perfetto events; None when nothing was
        written), stderr (the output named FILE)."""
        import csv
        import gzip
        got = []
        for engine in ((), ("--engine", "python")):
            out = os.path.join(self.tmp, "export%s.%s" % ("".join(engine),
                                                          "json" if perfetto else "csv.gz"))
            if os.path.exists(out):
                os.unlink(out)
            r = analyze("export", *engine, *(("--perfetto",) if perfetto else ()), *args,
                        "-o", out)
            self.assertEqual(r.returncode, code, (engine, r.stderr))
            err = r.stderr.replace(out, "FILE")
            if not os.path.exists(out):
                got.append((None, err))
            elif perfetto:
                with open(out) as f:
                    got.append((json.load(f)["traceEvents"], err))
            else:
                with gzip.open(out, "rt") as f:
                    got.append((list(csv.DictReader(f)), err))
        self.assertEqual(got[0][1], got[1][1], "the engines' messages differ")
        self.assertEqual(got[0][0], got[1][0], "the engines' exports differ")
        return got[0]

    def of_host(self, table, host, perfetto=False):
        """The rows of `host`, or its Perfetto process's events (without the
        Perfetto pid, which depends on the processes met before it)."""
        if not perfetto:
            return [row for row in table if row["host"] == host]
        pids = {e["pid"] for e in table if e["ph"] == "M" and e["args"]["host"] == host}
        return [dict(e, pid=None) for e in table if e["pid"] in pids]

    def check_export_beside(self, bad, code, *words):
        """Export of `bad` beside the other host's intact trace: the other's
        rows (CSV) and its counters and instants (Perfetto) are all there,
        as exported alone; one line on stderr holds `words`."""
        for perfetto in (False, True):
            alone, err = self.export(self.other, code=0, perfetto=perfetto)
            self.assertEqual(err.count("\n"), 1, err)  # export: FILE (...)
            host = next(e["args"]["host"] for e in alone if e["ph"] == "M") if perfetto \
                else alone[0]["host"]
            want = self.of_host(alone, host, perfetto)
            self.assertGreater(len(want), 4000 if not perfetto else 2)
            for args in ((bad, self.other), (self.other, bad))[:1 if perfetto else 2]:
                got, err = self.export(*args, code=code, perfetto=perfetto)
                self.assertIsNotNone(got, err)
                mine = self.of_host(got, host, perfetto)
                self.assertEqual(len(mine), len(want), (args, perfetto))
                self.assertEqual(mine, want, (args, perfetto))
                if not perfetto:
                    ts = [int(row["ts_ns"]) for row in got]
                    self.assertEqual(ts, sorted(ts))
                lines = err.strip().splitlines()
                self.assertEqual(len(lines), 2, err)  # the damage, then export: FILE (...)
                for w in words:
                    self.assertIn(w, lines[0])
                self.assertNotIn("method failed", err)

    def test_export_damage_stops_only_its_trace(self):
        bad, stream = self.copy("export-garbled")
        ends = packet_ends(stream)
        with open(stream, "r+b") as f:
            f.seek(ends[0] // 2)
            f.write(b"\xff" * 4096)
        self.check_export_beside(bad, 3, bad, "decoding stopped")
        # reader.read of both, directly: the other's events all there, the damage said
        from hostmem_analysis import reader

        def reserves(*paths):
            trust = reader.new_trust()
            evs = [(ev["host"], ev["seq"]) for ev in reader.read(paths, {"reserve": ("seq",)},
                                                                  trust)
                   if ev["name"] == "reserve"]
            return evs, trust
        alone, trust = reserves(self.other)
        self.assertEqual(len(alone), 4000)
        self.assertEqual(trust, reader.new_trust())
        got, trust = reserves(bad, self.other)
        self.assertEqual([ev for ev in got if ev[0] == alone[0][0]], alone)
        self.assertTrue(trust["stopped"] and trust["stopped"][0].startswith(bad), trust)

    def test_export_of_an_unreadable_trace_among_others(self):
        for name, cut in (("export-meta-empty", 0), ("export-meta-cut", 20)):
            bad, stream = self.copy(name)
            meta = os.path.join(os.path.dirname(stream), "metadata")
            with open(meta, "r+b") as f:
                f.truncate(cut)
            self.check_export_beside(bad, 3, os.path.dirname(meta))
        # None readable: one line, status 2, nothing written.
        for perfetto in (False, True):
            got, err = self.export(os.path.join(self.tmp, "export-meta-empty"), bad, code=2,
                                   perfetto=perfetto)
            self.assertIsNone(got)
            self.assertEqual(len(err.strip().splitlines()), 1, err)


class Fleet(unittest.TestCase):
    """R7: several trace directories read apart (local processes, a Dask
    cluster) and merged give what one reader of all of them finds."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-analysis-fleet.")
        cls.traces = []
        for i in range(3):
            t = os.path.join(cls.tmp, "host%d" % i)
            record(t, ("churn", str(200 * (i + 1))))
            cls.traces.append(t)
        cls.serial = None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def summary(self, *extra):
        r = analyze_both("summary", "--json", *extra, *self.traces, same_stderr="--scheduler" not in extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def one_reader(self):
        if Fleet.serial is None:
            Fleet.serial = self.summary("--jobs", "1")
        return Fleet.serial

    def test_local_processes_equal_one_reader(self):
        serial = self.one_reader()
        self.assertEqual(serial["ops"]["reserve"]["count"], 1200)
        self.assertEqual(len(serial["processes"]), 3)
        self.assertEqual(self.summary("--jobs", "2"), serial)

    def test_dask_local_cluster_equals_one_reader(self):
        try:
            from distributed import LocalCluster
        except ImportError:
            self.skipTest("python3-distributed is not installed")
        serial = self.one_reader()
        work = os.path.join(self.tmp, "dask")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None, local_directory=work) as cluster:
            got = self.summary("--scheduler", cluster.scheduler_address)
            # Trace directories named relative to the client's directory,
            # which is not the workers' (they failed: "no such file").
            r = analyze("summary", "--json", "--scheduler", cluster.scheduler_address,
                        *[os.path.relpath(t, self.tmp) for t in self.traces], cwd=self.tmp)
        self.assertEqual(got, serial)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), serial)

    def test_dask_workers_without_the_engine_library(self):
        """Workers that do not have libhostmem_engine.so (a remote machine
        with the package uploaded, nothing installed) read with the Python
        engine and the client says so, naming the worker and the library;
        strict, the run fails with that reason."""
        try:
            from distributed import LocalCluster
        except ImportError:
            self.skipTest("python3-distributed is not installed")
        serial = self.one_reader()
        work = os.path.join(self.tmp, "dask-nolib")
        lib = os.environ.pop("HOSTMEM_ENGINE_LIB", None)  # the workers start without it
        try:
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None, local_directory=work)
        finally:
            if lib is not None:
                os.environ["HOSTMEM_ENGINE_LIB"] = lib
        with cluster:
            args = ("summary", "--json", "--scheduler", cluster.scheduler_address) + tuple(
                self.traces)
            r = analyze(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout), serial)
            notes = [ln for ln in r.stderr.splitlines() if "reading with babeltrace2" in ln]
            self.assertEqual(len(notes), len(self.traces), r.stderr)
            for t in self.traces:
                self.assertTrue(any(ln.startswith("hostmem-analyze: %s/" % t) and
                                    " on worker tcp://" in ln for ln in notes), r.stderr)
            for ln in notes:
                self.assertIn("libhostmem_engine.so", ln)
            r = analyze(*args, env=dict(os.environ, HOSTMEM_ANALYZE_ENGINE_STRICT="1"))
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("on worker tcp://", r.stderr)
            self.assertIn("(libhostmem_engine.so) is not built or installed", r.stderr)


if __name__ == "__main__":
    if not HOST or not os.path.exists(HOST):
        sys.stderr.write("HOSTMEM_SCRIPTED_HOST is not set to the scripted host\n")
        sys.exit(2)
    try:
        ensure_sessiond()
    except RuntimeError as e:
        sys.stderr.write("test_e2e.py: LTTng unavailable: %s\n" % e)
        sys.exit(1)
    unittest.main()
