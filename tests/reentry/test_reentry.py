#!/usr/bin/python3
"""Re-entrancy tests (A5): a host whose malloc sits on hostmem.

hosted_malloc replaces malloc with a bump allocator whose every thread takes
its memory through hostmem, so any heap call hostmem or the tracer makes comes
back into hostmem on the same thread.  Each run must finish (a deadlock or a
runaway recursion fails by timeout or crash), untraced, traced from the start
by a real LTTng session, and with a session started mid-run (statedump), with
the shared and the static library.

The same runs are made with a host whose allocator is Debian's mimalloc, fed
with arenas that hostmem reserved and committed, when it was built
(--host-mimalloc, --host-mimalloc-static).

    test_reentry.py --host PATH --host-static PATH [--host-mimalloc PATH
                    --host-mimalloc-static PATH] [unittest args]

The traced runs need lttng-tools and Debian's python3-bt2 (/usr/bin/python3);
they reuse the session helper of tests/trace/test_trace.py.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import unittest

HOST = None
HOST_STATIC = None
HOST_MIMALLOC = None
HOST_MIMALLOC_STATIC = None
TIMEOUT = 30  # seconds; a run takes about one
HERE = os.path.dirname(os.path.abspath(__file__))


def trace_helpers():
    """tests/trace/test_trace.py: Session, workload_env, ensure_sessiond (imports bt2)."""
    sys.path.insert(0, os.path.join(HERE, "..", "trace"))
    import test_trace  # noqa: E402  (needs bt2, so only the traced tests load it)
    test_trace.ensure_sessiond()
    return test_trace


def parse(out):
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


class ReentryTest(unittest.TestCase):
    maxDiff = None

    def run_host(self, host, env, mode="run", threads=4):
        try:
            p = subprocess.run([host, mode, str(threads)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, timeout=TIMEOUT, text=True)
        except subprocess.TimeoutExpired:
            self.fail("%s %s did not finish in %d s (deadlock?)" % (os.path.basename(host), mode,
                                                                    TIMEOUT))
        self.assertEqual(p.returncode, 0, "exit status %d, stderr: %s" % (p.returncode,
                                                                        p.stderr[-2000:]))
        lines = parse(p.stdout)
        return lines[0], lines[-1]

    # ---- untraced: hostmem itself never allocates from the heap ------------
    def untraced(self, host):
        env = dict(os.environ, HOSTMEM_LTTNG="0")  # no provider: no other session can trace it
        header, counts = self.run_host(host, env)
        self.assertEqual(counts["heap_in_hostmem"], 0,
                         "hostmem called malloc inside its API: %r" % counts)
        if counts["mimalloc"]:
            return  # its arenas: a few reserves, no bootstrap check (mimalloc's own start-up)
        self.assertEqual(counts["nested_calls"], 0, counts)
        self.assertEqual(counts["boot_bytes"], 0, "hostmem_create used the heap: %r" % counts)
        self.assertGreater(counts["outer_reserve"], counts["threads"], counts)

    def test_untraced(self):
        self.untraced(HOST)

    def test_untraced_static(self):
        self.untraced(HOST_STATIC)

    # ---- traced from the start --------------------------------------------
    def traced(self, host):
        tt = trace_helpers()
        with tt.Session() as s:
            header, counts = self.run_host(host, tt.workload_env())
            s.stop()
            events, discarded = s.read(header["pid"])
        self.assertEqual(discarded, 0)
        names = [e["event"] for e in events]
        seqs = sorted(e["seq"] for e in events)
        self.assertEqual(len(seqs), len(set(seqs)), "a seq was emitted twice")
        self.assertNotIn("failure", names)
        # Decisions are made under the state lock and emitted after it.
        self.assertGreaterEqual(names.count("critical_decision"), counts["outer_decommit"], counts)
        # The tracer's first event on each thread allocates (lttng-ust's
        # thread-local storage): those calls came back into hostmem, completed,
        # and were not traced.  Every outer call emitted its event; the manager
        # may have been created before the provider was loaded, so the first
        # calls can be missing, never more than those.
        # mimalloc serves the tracer from an arena it already has, mostly.
        if not counts["mimalloc"]:
            self.assertGreater(counts["nested_calls"], 0,
                               "no call re-entered hostmem: the test did not exercise A5")
        for op in ("reserve", "commit", "decommit", "release"):
            got, outer = names.count(op), counts["outer_" + op]
            self.assertLessEqual(got, outer, "%s: a nested call was traced (%r)" % (op, counts))
        # The threads' own calls (after main started) are all there.
        for op in ("decommit", "release"):
            self.assertEqual(names.count(op), counts["outer_" + op], counts)
        self.assertGreaterEqual(names.count("reserve"), counts["threads"] * (counts["rounds"] // 50))

    def test_traced(self):
        self.traced(HOST)

    def test_traced_static(self):
        self.traced(HOST_STATIC)

    # ---- a session started mid-run: the statedump ------------------------------
    def statedump(self, host):
        tt = trace_helpers()
        proc = subprocess.Popen([host, "wait", "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=tt.workload_env(), text=True)
        try:
            lines = []
            # A host hung before it got ready would block the read forever.
            watchdog = threading.Timer(TIMEOUT, proc.kill)
            watchdog.start()
            for line in proc.stdout:
                lines.append(json.loads(line))
                if lines[-1].get("ready"):
                    break
            watchdog.cancel()
            self.assertTrue(lines and lines[-1].get("ready"),
                            "host did not get ready in %d s (deadlock?)" % TIMEOUT)
            with tt.Session() as s:
                proc.stdin.write("go\n")
                proc.stdin.flush()
                try:
                    rest, err = proc.communicate(timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()  # first: stopping the session waits for a hung host
                    proc.wait()
                    self.fail("the host did not finish in %d s after the session started "
                              "(deadlock in the statedump?)" % TIMEOUT)
                self.assertEqual(proc.returncode, 0, "exit status %d, stderr: %s"
                                 % (proc.returncode, err[-2000:]))
                s.stop()
                header, counts = lines[0], parse(rest)[-1]
                events, discarded = s.read(header["pid"])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(discarded, 0)
        names = [e["event"] for e in events]
        # The regions the host held before the session were dumped.
        self.assertGreater(names.count("region_state"), 0, names[:20])
        self.assertNotIn("failure", names)
        if not counts["mimalloc"]:
            self.assertGreater(counts["nested_calls"], 0, counts)
        # Decommit and release are the threads' own calls, all after the start.
        for op in ("decommit", "release"):
            self.assertEqual(names.count(op), counts["outer_" + op], counts)
        for op in ("reserve", "commit"):
            self.assertLessEqual(names.count(op), counts["outer_" + op], counts)

    def test_statedump(self):
        self.statedump(HOST)

    def test_statedump_static(self):
        self.statedump(HOST_STATIC)

    # ---- the same with mimalloc on hostmem ------------------------------------
    def mimalloc(self, static):
        host = HOST_MIMALLOC_STATIC if static else HOST_MIMALLOC
        if not host:
            self.skipTest("no mimalloc host given (libmimalloc-dev)")
        return host

    def test_mimalloc_untraced(self):
        self.untraced(self.mimalloc(False))

    def test_mimalloc_untraced_static(self):
        self.untraced(self.mimalloc(True))

    def test_mimalloc_traced(self):
        self.traced(self.mimalloc(False))

    def test_mimalloc_traced_static(self):
        self.traced(self.mimalloc(True))

    def test_mimalloc_statedump(self):
        self.statedump(self.mimalloc(False))

    def test_mimalloc_statedump_static(self):
        self.statedump(self.mimalloc(True))


def main():
    global HOST, HOST_STATIC, HOST_MIMALLOC, HOST_MIMALLOC_STATIC
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--host-static", required=True)
    parser.add_argument("--host-mimalloc")
    parser.add_argument("--host-mimalloc-static")
    args, rest = parser.parse_known_args()
    HOST, HOST_STATIC = os.path.abspath(args.host), os.path.abspath(args.host_static)
    if args.host_mimalloc and args.host_mimalloc_static:
        HOST_MIMALLOC = os.path.abspath(args.host_mimalloc)
        HOST_MIMALLOC_STATIC = os.path.abspath(args.host_mimalloc_static)
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
