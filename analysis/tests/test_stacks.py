#!/usr/bin/python3
"""Stacks end to end (T7, R5): record stack_host.c in real LTTng sessions and
check who holds memory against what the host did.

The host commits known bytes on three call paths (see stack_host.c).  It is
built twice: with frame pointers (recorded with HOSTMEM_STACKS_UNWIND=fp) and
without them (recorded with the unwinder, the default).  Both must give
`peak.by_stack`, `end.by_stack` and `leaks.by_stack` naming the host's
functions, innermost first, with the right bytes; the HTML report must hold
the flame graph; the symbol cache must answer for a binary that is gone.

Needs lttng-tools, HOSTMEM_STACK_HOST_FP and HOSTMEM_STACK_HOST_NOFP.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_e2e import Session, analyze  # noqa: E402
from hostmem_analysis.sessiond import ensure_sessiond  # noqa: E402

HOST_FP = os.environ.get("HOSTMEM_STACK_HOST_FP")
HOST_NOFP = os.environ.get("HOSTMEM_STACK_HOST_NOFP")
SOURCE = os.path.join(HERE, "stack_host.c")
MIB = 1024 * 1024

# path -> (innermost function first, committed at the peak, committed at the end)
PATHS = {
    "cache": (["grow_cache", "load_config", "main"], 3 * MIB, 3 * MIB, 8 * MIB),
    "index": (["index_chunk", "build_index", "main"], 2 * MIB, 0, None),
    "decoder": (["decode_frame", "run_decoder", "main"], 1 * MIB, 3 * MIB // 4, 4 * MIB),
}


def source_line(text):
    """The line of stack_host.c that holds `text` (where a frame must point)."""
    with open(SOURCE) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise AssertionError("%s not in %s" % (text, SOURCE))


def functions(stack):
    return [f.split(" (")[0] for f in stack]


def run_host(host, trace, env):
    """Run `host` while a session records it (hostmem:* and the statedump)."""
    p = subprocess.Popen([host], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise AssertionError("%s: %r %s" % (host, line, p.stderr.read()))
        with Session(trace, [p.pid]):
            out, err = p.communicate("go\n", timeout=60)
        if p.returncode != 0 or "done" not in out:
            raise AssertionError("%s failed (%s): %s" % (host, p.returncode, err))
        return err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


class Stacks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not HOST_FP or not HOST_NOFP:
            raise unittest.SkipTest("HOSTMEM_STACK_HOST_FP / _NOFP not set")
        ensure_sessiond()
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-stacks.")
        cls.cache = os.path.join(cls.tmp, "cache")
        cls.env = dict(os.environ, HOSTMEM_SYMBOL_CACHE=cls.cache)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def record(self, name, host, **env):
        trace = os.path.join(self.tmp, name)
        e = dict(os.environ)
        for k in ("HOSTMEM_STACKS", "HOSTMEM_STACKS_UNWIND"):
            e.pop(k, None)
        e.update(env)
        err = run_host(host, trace, e)
        self.assertEqual(err, "", "the host said something on stderr")
        return trace

    def summary(self, trace, env=None, *args):
        old = dict(os.environ)
        os.environ.update(env or self.env)
        try:
            r = analyze("summary", "--json", *args, trace)
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def find(self, rows, fns, line=None):
        """The entry whose stack starts with the functions `fns` (the innermost
        at stack_host.c:`line`, when given)."""
        hits = [e for e in rows if functions(e["stack"])[:len(fns)] == fns and
                (line is None or e["stack"][0] == "%s (stack_host.c:%d)" % (fns[0], line))]
        self.assertEqual(len(hits), 1, "%s in %s" % (fns, json.dumps(rows, indent=1)))
        return hits[0]

    def check_stacks(self, got):
        self.assertEqual((got["discarded_events"], got["seq_gaps"]), (0, 0))
        (proc,) = got["processes"]
        reserve_line = {"cache": source_line("8 * MIB, MEM_RESERVE"),
                        "index": source_line("MEM_RESERVE | MEM_COMMIT"),
                        "decoder": source_line("4 * MIB, MEM_RESERVE")}
        for where in (got, proc):
            peak, end, leaks = (where["peak"]["by_stack"], where["end"]["by_stack"],
                                where["leaks"]["by_stack"])
            for name, (fns, at_peak, at_end, leaked_reserved) in PATHS.items():
                e = self.find(peak, fns, reserve_line[name])
                self.assertEqual((e["committed_bytes"], e["regions"]), (at_peak, 1), name)
                # Innermost frame: the reserve's own line.
                self.assertEqual(e["stack"][0], "%s (stack_host.c:%d)" % (fns[0], reserve_line[name]))
                self.assertRegex(e["stack"][1], r"^%s \(stack_host\.c:\d+\)$" % fns[1])
                if at_end:
                    self.assertEqual(self.find(end, fns, reserve_line[name])["committed_bytes"], at_end,
                                     name)
                    lk = self.find(leaks, fns, reserve_line[name])
                    self.assertEqual((lk["committed_bytes"], lk["regions"], lk["reserved_bytes"]),
                                     (at_end, 1, leaked_reserved), name)
                else:
                    self.assertFalse([x for x in end + leaks if functions(x["stack"])[:1] == fns[:1]
                                      and x["stack"][0].endswith(":%d)" % reserve_line[name])])
            # Largest first: the three paths lead (the heap's own regions are 64 KiB).
            self.assertEqual([functions(x["stack"])[0] for x in peak[:3]],
                             ["grow_cache", "index_chunk", "decode_frame"])
            self.assertEqual(where["peak"]["committed_bytes"],
                             sum(x["committed_bytes"] for x in peak))
        # The heap's allocation grew the heap: its region belongs to the host's
        # call of hostmem_malloc_alloc in decode_frame, and no frame of
        # hostmem's own is in any stack.
        heap = self.find(proc["peak"]["by_stack"], PATHS["decoder"][0],
                         source_line("hostmem_malloc_alloc(heap, 1000"))
        self.assertEqual(heap["regions"], 1)
        for x in proc["peak"]["by_stack"] + proc["end"]["by_stack"]:
            self.assertFalse([f for f in functions(x["stack"]) if f.startswith("hostmem")], x)

    def test_frame_pointers(self):
        trace = self.record("fp", HOST_FP, HOSTMEM_STACKS="16", HOSTMEM_STACKS_UNWIND="fp")
        got = self.summary(trace)
        self.check_stacks(got)
        # The C engine (the default) and the Python model apply the same rule.
        py = self.summary(trace, None, "--engine", "python")
        for where in ((got, py), (got["processes"][0], py["processes"][0])):
            self.assertEqual(where[0]["peak"], where[1]["peak"])
            self.assertEqual(where[0]["end"], where[1]["end"])
            self.assertEqual(where[0]["leaks"]["by_stack"], where[1]["leaks"]["by_stack"])
        # The text summary names the same paths.
        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            r = analyze("summary", trace)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("Who holds memory", r.stdout)
            self.assertRegex(r.stdout, r"3\.0 MiB committed in 1 region\n\s+grow_cache \(stack_host\.c:")
            out = os.path.join(self.tmp, "report-fp")
            r = analyze("report", "-q", trace, "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            os.environ.clear()
            os.environ.update(old)
        with open(os.path.join(out, "index.html")) as f:
            page = f.read()
        self.check_flame(page)

    def check_flame(self, page):
        """The flame graph: inline SVG, nothing fetched, a box per frame with its bytes."""
        m = re.search(r'<svg[^>]*class="flame".*?</svg>', page, re.S)
        self.assertIsNotNone(m, "no flame graph in the report")
        svg = m.group(0)
        for fn in ("grow_cache", "load_config", "index_chunk", "build_index", "decode_frame",
                   "run_decoder", "main"):
            self.assertIn(fn, svg)
        self.assertRegex(svg, r"<title>grow_cache \(stack_host\.c:\d+\): 3\.0 MiB\n3\.0 MiB, ")
        self.assertNotRegex(page, r'(src|href)="https?:')

    def test_unwinder_without_frame_pointers(self):
        trace = self.record("nofp", HOST_NOFP, HOSTMEM_STACKS="16")
        self.check_stacks(self.summary(trace))

    def test_frame_pointers_on_a_host_without_them_never_fault(self):
        # The documented limit: fp on a host built without frame pointers may
        # lose its callers (how many depends on what %rbp holds), but the walk
        # never faults and the innermost frame, the caller, is always right.
        trace = self.record("nofp-fp", HOST_NOFP, HOSTMEM_STACKS="64", HOSTMEM_STACKS_UNWIND="fp")
        got = self.summary(trace)
        lines = {"cache": source_line("8 * MIB, MEM_RESERVE"),
                 "index": source_line("MEM_RESERVE | MEM_COMMIT"),
                 "decoder": source_line("4 * MIB, MEM_RESERVE")}
        for name, (fns, at_peak, _, _) in PATHS.items():
            e = [x for x in got["peak"]["by_stack"]
                 if x["stack"][0] == "%s (stack_host.c:%d)" % (fns[0], lines[name])]
            self.assertEqual(sum(x["committed_bytes"] for x in e), at_peak, name)

    def test_profile_stacks_option(self):
        # hostmem-profile --stacks N records what HOSTMEM_STACKS=N does, for
        # the command alone; a bad N is refused before anything runs.
        profile = os.path.join(os.path.dirname(HERE), "hostmem-profile")
        out = os.path.join(self.tmp, "profile")
        e = dict(self.env)
        for k in ("HOSTMEM_STACKS", "HOSTMEM_STACKS_UNWIND"):
            e.pop(k, None)
        r = subprocess.run([sys.executable, profile, "-o", out, "--stacks", "16", "--no-report", "--",
                            HOST_NOFP], input="go\n", capture_output=True, text=True, env=e,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Who holds memory", r.stderr)
        self.check_stacks(self.summary(os.path.join(out, "trace")))
        for bad in (["--stacks", "0"], ["--stacks", "65"], ["--stack-walk", "fp"]):
            r = subprocess.run([sys.executable, profile, "-o", out + "-bad"] + bad + ["--", HOST_NOFP],
                               capture_output=True, text=True, env=e, timeout=60)
            self.assertEqual(r.returncode, 2, bad)
            self.assertFalse(os.path.exists(out + "-bad"), bad)

    def test_without_stacks_the_caller_alone(self):
        trace = self.record("off", HOST_FP)
        got = self.summary(trace)
        self.assertNotIn("stack", got["events_by_name"])
        e = self.find(got["peak"]["by_stack"], ["grow_cache"])
        self.assertEqual((len(e["stack"]), e["committed_bytes"]), (1, 3 * MIB))

    def test_symbol_cache_outlives_the_binary(self):
        # A copy of the host, recorded, analysed once (the cache fills), then
        # removed: the names still come from the cache; without it the
        # frames are address, object and offset.
        copy = os.path.join(self.tmp, "stack_host_copy")
        shutil.copy2(HOST_FP, copy)
        trace = self.record("copy", copy, HOSTMEM_STACKS="4", HOSTMEM_STACKS_UNWIND="fp")
        first = self.summary(trace)
        os.unlink(copy)
        again = self.summary(trace)
        self.assertEqual(first["peak"]["by_stack"], again["peak"]["by_stack"])
        bare = self.summary(trace, dict(self.env, HOSTMEM_SYMBOL_CACHE="0"))
        top = bare["peak"]["by_stack"][0]["stack"][0]
        self.assertRegex(top, r"^0x[0-9a-f]+ \(stack_host_copy\+0x[0-9a-f]+\)$")


if __name__ == "__main__":
    unittest.main()
