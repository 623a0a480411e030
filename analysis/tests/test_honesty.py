#!/usr/bin/python3
"""T8 end to end: crashes, exit statuses, commands that cannot start or
record nothing, and traces cut at a packet boundary, each said as it is.

Needs what test_e2e.py needs (LTTng, HOSTMEM_SCRIPTED_HOST).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402

PROFILE = os.path.join(e2e.ANALYSIS, "hostmem-profile")
HOST = e2e.HOST
KiB = 1024
MiB = 1024 * KiB


def profile(out, *command, env=None, stdin="go\n", report=True):
    full = dict(os.environ)
    # ASan's own SEGV handler would turn the crash into exit status 1.
    full["ASAN_OPTIONS"] = (full.get("ASAN_OPTIONS", "") + ":handle_segv=0").lstrip(":")
    full.update(env or {})
    opts = [] if report else ["--no-report"]
    return subprocess.run([sys.executable, PROFILE, "-o", out] + opts + ["--"] + list(command),
                          input=stdin, capture_output=True, text=True, timeout=300, env=full)


def report_json(out):
    with open(os.path.join(out, "report", "summary.json")) as f:
        return json.load(f)


class Profile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.ensure_sessiond()
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-honesty.")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def crash(self, sig, name, report, heap=False):
        out = os.path.join(self.tmp, "crash-%d" % sig)
        argv = [HOST, "crash", str(sig)] + (["heap"] if heap else [])
        r = profile(out, *argv, report=report)
        self.assertEqual(r.returncode, 128 + sig, r.stderr)
        self.assertIn("%s (pid " % " ".join(argv[1:]), r.stderr)
        self.assertIn("killed by signal %d (%s)" % (sig, name), r.stderr)
        s = report_json(out) if report else e2e.summary_json(os.path.join(out, "trace"))
        self.assertEqual(s["command"]["signal"], sig)
        self.assertEqual(s["command"]["signal_name"], name)
        self.assertNotIn("exit_status", s["command"])
        self.assertEqual(s["command"]["argv"], argv)
        # What destroy freed is the host's leak; what it held when it died is not.
        self.assertEqual((s["leaks"]["regions"], s["leaks"]["reserved_bytes"]), (1, 128 * KiB))
        self.assertEqual([e["site"].split(" ")[0] for e in s["leaks"]["by_caller"]],
                         ["leak_site_a"])
        crash = s["live_at_crash"]
        sites = {e["site"].split(" ")[0]: e for e in crash["by_caller"]}
        self.assertEqual((sites["reserve"]["reserved_bytes"], sites["reserve"]["committed_bytes"]),
                         (MiB, 256 * KiB))
        self.assertEqual((sites["leak_site_b"]["reserved_bytes"],
                          sites["leak_site_b"]["committed_bytes"]), (256 * KiB, 64 * KiB))
        if heap:
            # The block malloc_destroy took is a leak; the two of the live heap are not.
            self.assertEqual(s["heap"]["leaks"]["blocks"], 1)
            self.assertEqual(s["heap"]["live_at_crash"]["blocks"], 2)
            self.assertGreater(crash["regions"], 2)  # the live heap's own regions too
        else:
            self.assertEqual((crash["regions"], crash["reserved_bytes"],
                              crash["committed_bytes"]), (2, MiB + 256 * KiB, 320 * KiB))
            self.assertEqual(s["heap"]["live_at_crash"]["blocks"], 0)
        self.assertFalse(s["trust"]["complete"])
        self.assertEqual(len(s["trust"]["reasons"]), 1, s["trust"])
        self.assertIn("1 manager never destroyed: the process was killed by " + name,
                      s["trust"]["reasons"][0])
        if not report:
            return
        with open(os.path.join(out, "report", "index.html")) as f:
            page = f.read()
        self.assertIn("killed by signal %d (%s)" % (sig, name), page)
        # The trace alone says the same: the command's record travels with it.
        again = e2e.summary_json(os.path.join(out, "trace"))
        self.assertEqual(again["command"], s["command"])
        self.assertEqual(again["live_at_crash"]["regions"], 2)

    def test_crash_by_sigsegv(self):
        self.crash(11, "SIGSEGV", report=True)

    def test_crash_by_abort(self):
        self.crash(6, "SIGABRT", report=False, heap=True)

    def test_exit_status_passed_through_and_reported(self):
        out = os.path.join(self.tmp, "exit5")
        r = profile(out, HOST, "exit", "5", report=False)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertEqual(r.stdout, "ready\n")
        self.assertIn("exit 5 (pid ", r.stderr)
        self.assertIn("exited with status 5", r.stderr)
        self.assertIn("Command: %s exit 5 (pid " % HOST, r.stderr)  # the summary's first line
        s = e2e.summary_json(os.path.join(out, "trace"))
        self.assertEqual(s["command"]["exit_status"], 5)
        self.assertNotIn("signal", s["command"])
        self.assertTrue(s["trust"]["complete"], s["trust"])
        self.assertEqual(s["leaks"]["regions"], 0)
        self.assertEqual(s["live_at_crash"]["regions"], 0)

    def test_signals_to_the_profiler_reach_the_command(self):
        """SIGINT sent to hostmem-profile (not typed at a terminal) goes on to
        the command, which it kills; the profiler says so and exits 130."""
        out = os.path.join(self.tmp, "sigint")
        p = subprocess.Popen([sys.executable, PROFILE, "-o", out, "--no-report", "--", HOST,
                              "hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline(), "ready\n")
            p.stdin.write("go\n")
            p.stdin.flush()
            self.assertEqual(p.stdout.readline(), "held\n")
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("hold (pid ", err)
        self.assertIn("killed by signal 2 (SIGINT)", err)

    def test_command_that_cannot_start(self):
        script = os.path.join(self.tmp, "not-executable.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(script, 0o644)
        for cmd, status, words in (("hostmem-no-such-command", 127, "command not found"),
                                   (os.path.join(self.tmp, "missing"), 127, "no such file"),
                                   (script, 126, "not executable"),
                                   (self.tmp, 126, "is a directory")):
            out = os.path.join(self.tmp, "nostart")
            r = profile(out, cmd)
            self.assertEqual(r.returncode, status, r.stderr)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn("cannot start the command: %s: %s" % (cmd, words), lines[0])
            self.assertFalse(os.path.exists(out), "nothing is recorded")

    def test_command_that_records_nothing(self):
        # HOSTMEM_LTTNG=0 where hostmem-profile sees it: said by name.
        r = profile(os.path.join(self.tmp, "off"), HOST, "exit", "0",
                    env={"HOSTMEM_LTTNG": "0"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("exited with status 0", r.stderr)
        self.assertIn("recorded no hostmem events: HOSTMEM_LTTNG=0 is set", r.stderr)
        self.assertNotIn("hostmem summary", r.stderr)
        # Set inside the command: every cause is named.
        r = profile(os.path.join(self.tmp, "off-inside"), "env", "HOSTMEM_LTTNG=0", HOST,
                    "exit", "4")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("ran (exited with status 4) but recorded no hostmem events", r.stderr)
        self.assertIn("HOSTMEM_LTTNG=0", r.stderr)


class Truncated(unittest.TestCase):
    """A stream cut at a packet boundary looks whole packet by packet: the
    index beside it tells, and the trace is not called complete."""

    @classmethod
    def setUpClass(cls):
        e2e.ensure_sessiond()
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-truncated.")
        cls.trace = os.path.join(cls.tmp, "intact")
        e2e.record(cls.trace, ("churn", "4000"), subbuf="256K")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def cut(self, name, where):
        dst = e2e.fresh_copy(self.trace, self.tmp, name)
        stream = e2e.biggest_stream(dst)
        ends = e2e.packet_ends(stream)
        self.assertGreaterEqual(len(ends), 2, "the stream has a single packet")
        with open(stream, "r+b") as f:
            f.truncate(where(ends))
        return dst, stream, ends

    def test_intact_is_complete(self):
        s = e2e.summary_json(self.trace)
        self.assertTrue(s["trust"]["complete"], s["trust"])
        self.assertEqual(s["leaks"]["regions"], 0)

    def test_cut_at_a_packet_boundary(self):
        dst, stream, ends = self.cut("boundary", lambda ends: ends[-2])
        r = e2e.analyze("summary", "--json", dst)
        self.assertEqual(r.returncode, 3, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(stream, lines[0])
        self.assertIn("stream cut at byte %d, at a packet boundary" % ends[-2], lines[0])
        s = json.loads(r.stdout)
        self.assertFalse(s["trust"]["complete"])
        self.assertTrue(any("at a packet boundary (its index lists %d packets, up to byte %d)"
                            % (len(ends), ends[-1]) in x for x in s["trust"]["reasons"]),
                        s["trust"])
        text = " ".join(e2e.analyze("summary", dst).stdout.split())  # lines wrap
        # The leak the cut made is flagged as possibly a lost release.
        self.assertIn("Leaks may include regions whose release was lost", text)
        self.assertNotIn("Nothing shows a loss", text)

    def test_lost_releases_found_at_destroy(self):
        """A packet of releases cut out: destroy's count of live regions gives
        it away, in both engines."""
        trace = os.path.join(self.tmp, "lose")
        e2e.record(trace, ("lose", "3000"), subbuf="128K")
        intact = e2e.summary_json(trace)
        self.assertFalse(any("destroy found" in x for x in intact["trust"]["reasons"]), intact)
        stream = max(e2e.streams_of(trace), key=os.path.getsize)
        ends = e2e.packet_ends(stream)
        self.assertGreaterEqual(len(ends), 4, ends)
        with open(stream, "rb") as f:
            data = f.read()
        with open(stream, "wb") as f:  # the second-to-last packet (releases) goes
            f.write(data[:ends[-3]] + data[ends[-2]:])
        shutil.rmtree(os.path.join(os.path.dirname(stream), "index"))
        got = {}
        for engine in ("c", "python"):
            r = e2e.analyze("summary", "--json", "--engine", engine, trace)
            self.assertIn(r.returncode, (0, 3), r.stderr)
            got[engine] = json.loads(r.stdout)["trust"]
            lost = [x for x in got[engine]["reasons"] if "destroy found 0 regions live" in x]
            self.assertEqual(len(lost), 1, (engine, got[engine]))
            self.assertIn("the trace shows", lost[0])
        self.assertEqual(got["c"], got["python"])

    def test_cut_mid_packet(self):
        dst, stream, ends = self.cut("middle", lambda ends: ends[-2] + (ends[-1] - ends[-2]) // 2)
        r = e2e.analyze("summary", "--json", dst)
        self.assertEqual(r.returncode, 3, r.stderr)
        s = json.loads(r.stdout)
        self.assertFalse(s["trust"]["complete"])
        self.assertTrue(any(stream in x and "cut mid-packet" in x for x in s["trust"]["reasons"]))
        # One reason for the one cut (the index agrees; it is not said twice).
        self.assertEqual(sum(stream in x for x in s["trust"]["reasons"]), 1, s["trust"])


if __name__ == "__main__":
    if not HOST:
        sys.stderr.write("HOSTMEM_SCRIPTED_HOST is not set\n")
        sys.exit(2)
    unittest.main()
