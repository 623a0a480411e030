#!/usr/bin/python3
"""seq order, end to end: a process's events on two CPUs whose clocks
disagree are replayed in the order the process made them.

The scripted host's "ahead" mode runs its first operations on a worker
thread on CPU 1 and the rest on the main thread on CPU 0; the test's clock
plugin (ahead_clock.c, loaded by LTTng-UST through LTTNG_UST_CLOCK_PLUGIN)
stamps the worker's events 50 ms ahead.  In time order the worker's reserve
of a region comes after the main thread released that region and reserved
its address again; in seq order it comes first.  Both engines must give the
summary of what the host did (the differential test: test_e2e.summary_json).

Needs what test_e2e.py needs, HOSTMEM_AHEAD_CLOCK (the plugin) and CPUs 0
and 1 (skipped otherwise: exit status 77).
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
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402

CLOCK = os.environ.get("HOSTMEM_AHEAD_CLOCK")
KiB = 1024


class SeqOrder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.ensure_sessiond()
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-order.")
        cls.trace = os.path.join(cls.tmp, "ahead")
        e2e.record(cls.trace, ("ahead",), env=dict(os.environ, LTTNG_UST_CLOCK_PLUGIN=CLOCK))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_the_trace_is_out_of_time_order(self):
        # The plugin was in use: the seqs in time order are not sorted
        # (otherwise this test would prove nothing).
        text = subprocess.run(["babeltrace2", self.trace], capture_output=True, text=True,
                              check=True).stdout
        seqs = [int(s) for s in re.findall(r"\bseq = (\d+)", text)]
        self.assertEqual(sorted(seqs), list(range(1, len(seqs) + 1)), text)
        self.assertNotEqual(seqs, sorted(seqs), text)

    def test_both_engines_replay_in_seq_order(self):
        s = e2e.summary_json(self.trace)
        # The worker's 64 KiB and the main thread's 64 KiB of one region, then
        # 32 KiB of a new region at the same address, left live.
        self.assertEqual(s["peak_committed_bytes"], 128 * KiB)
        self.assertEqual((s["end_reserved_bytes"], s["end_committed_bytes"]), (64 * KiB, 32 * KiB))
        leaks = s["leaks"]
        self.assertEqual((leaks["regions"], leaks["reserved_bytes"], leaks["committed_bytes"]),
                         (1, 64 * KiB, 32 * KiB))
        self.assertEqual([e["site"].split(" ")[0] for e in leaks["by_caller"]], ["ahead"])
        self.assertEqual(s["events_by_name"], {"manager_create": 1, "reserve": 2, "commit": 3,
                                               "release": 1, "totals": 2})
        self.assertFalse([r for r in s["trust"]["reasons"] if "seq" in r], s["trust"])

    def test_the_totals_over_time_never_step_back(self):
        # Perfetto's counters are the samples of the totals: in seq order,
        # stamped no earlier than the sample before (the worker's events,
        # stamped 50 ms ahead, come first in seq order).
        for engine in ((), ("--engine", "python")):
            out = os.path.join(self.tmp, "perfetto%s.json" % "".join(engine))
            r = e2e.analyze("export", *engine, "--perfetto", self.trace, "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                doc = json.load(f)
            committed = [e for e in doc["traceEvents"]
                         if e.get("ph") == "C" and e["name"] == "committed_bytes"]
            stamps = [e["ts"] for e in committed]
            self.assertEqual(stamps, sorted(stamps), (engine, committed))
            values = [e["args"]["committed_bytes"] for e in committed]
            # 64 KiB by the worker, 64 KiB more by the main thread, the
            # release, then 32 KiB of the new region: in that order.
            firsts = [values.index(v) for v in (64 * KiB, 128 * KiB, 32 * KiB)]
            self.assertEqual(firsts, sorted(firsts), (engine, values))
            self.assertEqual(values[-1], 32 * KiB, (engine, values))


if __name__ == "__main__":
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        cpus = set(range(os.cpu_count() or 1))
    if not {0, 1} <= cpus:
        print("test_order: needs CPUs 0 and 1 (has %s): skipped" % sorted(cpus))
        sys.exit(77)
    if not CLOCK or not e2e.HOST:
        print("test_order: HOSTMEM_AHEAD_CLOCK and HOSTMEM_SCRIPTED_HOST must be set")
        sys.exit(2)
    unittest.main()
