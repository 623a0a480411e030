#!/usr/bin/python3
"""bench.tracing: run-tracing.sh end to end, as a user runs it, on --quick.

    test_run_tracing.py BENCH

Runs benchmarks/run-tracing.sh --quick with BENCH (real sessions, a session
daemon of its own) and checks what it wrote, not how fast anything was
(--quick figures mean nothing): every mode ran, the T6 table has every
operation of the trace family with an event cost and a bare cost, the side
by side line is there, and each burst accounts for every event it emitted
(recorded plus discarded).  Missing LTTng tools fail the test: scripts/setup
installs them.
"""
import json
import os
import subprocess
import sys
import tempfile

T6_OPERATIONS = {"reserve", "release", "region_pair", "malloc_alloc", "malloc_free"}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bench = sys.argv[1]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run-tracing.sh")
    with tempfile.TemporaryDirectory(prefix="hostmem-run-tracing.") as out:
        run = subprocess.run([script, "--bench", bench, "--quick", "--out", out],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=240)
        print(run.stdout)
        if run.returncode != 0:
            print("FAIL: run-tracing.sh exited with", run.returncode)
            return 1
        with open(os.path.join(out, "tracing.json")) as f:
            doc = json.load(f)
    problems = []
    for row in doc["modes"]:
        if set(row["p50_ns"]) != {"none", "disabled", "enabled"}:
            problems.append("modes of %s %s: %s" % (row["operation"], row["variant"],
                                                    sorted(row["p50_ns"])))
    t6 = doc.get("t6") or {}
    rows = {r["operation"]: r for r in t6.get("rows", [])}
    if set(rows) != T6_OPERATIONS:
        problems.append("T6 rows %s, expected %s" % (sorted(rows), sorted(T6_OPERATIONS)))
    for op, r in rows.items():
        if not (r["event_ns"] > 0 and r["bare_event_ns"] > 0 and r["ratio"] > 0):
            problems.append("T6 row %s: %s" % (op, r))
    side = doc.get("t6_side_by_side")
    if not side or not (side["region_event_ns"] > 0 and side["bare_event_here_ns"] > 0):
        problems.append("no T6 side by side: %s" % side)
    if not doc["burst"]:
        problems.append("no burst result")
    for b in doc["burst"]:
        emitted = b["bench"]["burst"]["events_emitted"]
        if emitted <= 0 or b["accounted"] != emitted:
            problems.append("burst %s: emitted %d, recorded %d + discarded %d" % (
                b["channel"], emitted, b["recorded"], max(b["discarded_lttng"],
                                                          b["discarded_babeltrace"])))
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
