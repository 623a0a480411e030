#!/usr/bin/python3
"""analysis_bench.py: how fast hostmem-analyze reads a big trace, beside babeltrace2.

    benchmarks/analysis_bench.py --host PATH/hostmem_scripted_host [--events N]
                                 [--out DIR] [--keep] [--json]

Records one trace of N hostmem events (default: $HOSTMEM_ANALYSIS_BENCH_EVENTS,
else 10,000,000) from `hostmem_scripted_host churn` (reserve, commit,
decommit, release of 64 KiB per round, plus hostmem:totals every 64th region
event) in a blocking channel, so nothing is discarded (the host waits for the
consumer instead), then measures in the same run, on the same trace:

  babeltrace2 TRACE -o dummy         decode and mux, no output
  hostmem-analyze summary --json     events/s, peak RSS
  hostmem-analyze report -q -o DIR   time over the summary's

and prints babeltrace2's events/s, the summary's, their ratio (rule R3
asks >= 1.0; docs/analysis.md says where it stands), the summary's peak RSS
and CPU time (user + system over wall: how many cores it kept busy) and
report time / summary time (R3: <= 1.5).  Times are wall clock.

Cores busy depends on what else the machine runs; so the summary also says
(`--speed`) how its CPU time splits between its threads: the replay (one
thread), the decoders (one per core) and the rest (Python, one thread).
CPU time over the one-thread part is how many cores the work keeps busy when
the machine has them free.

The summary and the report run on the C engine (the default), which must read
the trace itself (HOSTMEM_ANALYZE_ENGINE_STRICT: no silent fallback to
babeltrace2); its library is $HOSTMEM_ENGINE_LIB, else --engine-lib, else
the one built beside the host (BUILD/lib/libhostmem_engine.so).
--python also times `summary --engine python` (slow: minutes per million
events).

The 10M run takes minutes and is not part of CI; CI runs it with
--events 20000 (ctest bench.analysis_small) to keep it working.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "analysis", "hostmem-analyze")
EVENTS_PER_ROUND = 4 + 4 / 64.0  # four region events and a totals event every 64


def lttng(*args):
    r = subprocess.run(["lttng"] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("analysis_bench: lttng %s: %s" % (" ".join(args), r.stderr.strip()))


def timed(cmd):
    """Wall seconds of `cmd`."""
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("analysis_bench: %s failed (%d): %s" % (cmd[0], r.returncode,
                                                                  r.stderr.strip()[-500:]))
    return time.monotonic() - t0


def measured(cmd, env=None):
    """(wall seconds, peak RSS bytes, stdout, CPU seconds) of `cmd`, from its rusage."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # read both pipes to the end, then reap the child with its own rusage
    err = []
    t = threading.Thread(target=lambda: err.append(p.stderr.read()))
    t.start()
    out = p.stdout.read()
    t.join()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if p.returncode not in (0, 3):
        raise SystemExit("analysis_bench: %s failed (%d): %s" % (
            " ".join(cmd[:3]), p.returncode, err[0].decode(errors="replace").strip()[-500:]))
    measured.stderr = err[0].decode(errors="replace")
    return wall, ru.ru_maxrss * 1024, out, ru.ru_utime + ru.ru_stime


def engine_cpu(stderr):
    """(replay, decoders, busiest decoder) CPU seconds from `summary --speed`."""
    m = re.search(r"engine CPU: replay thread ([0-9.]+) s, decoder threads ([0-9.]+) s "
                  r"\(busiest ([0-9.]+) s\)", stderr)
    if m is None:
        raise SystemExit("analysis_bench: summary --speed gave no engine CPU line: %s"
                         % stderr.strip()[-300:])
    return tuple(float(x) for x in m.groups())


def record(host, rounds, trace, mode="churn"):
    name = "hostmem-analysis-bench-%d" % os.getpid()
    env = dict(os.environ, LTTNG_UST_ALLOW_BLOCKING="1", LTTNG_UST_REGISTER_TIMEOUT="-1")
    p = subprocess.Popen([host, mode, str(rounds)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    try:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("analysis_bench: the host did not start")
        lttng("create", name, "--output=" + trace)
        try:
            # Blocking: the host waits for the consumer, nothing is discarded.
            lttng("enable-channel", "-u", "ch", "-s", name, "--subbuf-size=4M",
                  "--num-subbuf=8", "--blocking-timeout=inf")
            lttng("enable-event", "-u", "hostmem:*", "-s", name, "-c", "ch")
            lttng("enable-event", "-u", "lttng_ust_statedump:*", "-s", name, "-c", "ch")
            lttng("add-context", "-u", "-s", name, "-c", "ch", "-t", "vpid", "-t", "vtid",
                  "-t", "procname")
            lttng("untrack", "-u", "-s", name, "--vpid", "--all")
            lttng("track", "-u", "-s", name, "--vpid=%d" % p.pid)
            lttng("start", name)
            t0 = time.monotonic()
            p.stdin.write("go\n")
            p.stdin.flush()
            if p.wait(timeout=3600) != 0:
                raise SystemExit("analysis_bench: the host failed")
            rec = time.monotonic() - t0
            lttng("stop", name)
        finally:
            subprocess.run(["lttng", "destroy", name], capture_output=True)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True, help="hostmem_scripted_host")
    ap.add_argument("--events", type=int,
                    default=int(os.environ.get("HOSTMEM_ANALYSIS_BENCH_EVENTS", "10000000")))
    ap.add_argument("--out", help="directory for the trace and report (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the trace")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--trace", help="measure this recorded trace instead of recording one "
                    "(e.g. one kept by an earlier --out DIR --keep run: DIR/trace)")
    ap.add_argument("--live", type=int, default=100000, metavar="N",
                    help="also record a host that leaves N regions live and give the summary's "
                         "peak RSS for it (R3: 256 MiB at most for 100k; 0: skip)")
    ap.add_argument("--engine-lib", help="libhostmem_engine.so (default: beside the host's build)")
    ap.add_argument("--python", action="store_true",
                    help="also time summary --engine python (minutes per million events)")
    a = ap.parse_args()
    env = dict(os.environ, HOSTMEM_ANALYZE_ENGINE="c", HOSTMEM_ANALYZE_ENGINE_STRICT="1")
    if a.engine_lib:
        env["HOSTMEM_ENGINE_LIB"] = a.engine_lib
    elif "HOSTMEM_ENGINE_LIB" not in env:
        env["HOSTMEM_ENGINE_LIB"] = os.path.join(os.path.dirname(os.path.abspath(a.host)), "..",
                                                 "lib", "libhostmem_engine.so")
    out = a.out or tempfile.mkdtemp(prefix="hostmem-analysis-bench.")
    os.makedirs(out, exist_ok=True)
    # The tool's bytecode compiled once, as a user's runs find it (CTest and
    # some environments say PYTHONDONTWRITEBYTECODE, which would make every
    # run compile the package again: a tenth of a second; __pycache__ is
    # ignored by git).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    os.path.join(HERE, "..", "analysis", "hostmem_analysis")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    trace = os.path.join(out, "trace")
    try:
        if a.trace:
            trace, rec_s = a.trace, None
        else:
            shutil.rmtree(trace, ignore_errors=True)
            rounds = max(1, int(a.events / EVENTS_PER_ROUND))
            sys.stderr.write("analysis_bench: recording %d rounds (~%d events)\n"
                             % (rounds, a.events))
            rec_s = record(a.host, rounds, trace)

        sys.stderr.write("analysis_bench: babeltrace2 -o dummy\n")
        bt_s = timed(["babeltrace2", trace, "-o", "dummy"])
        sys.stderr.write("analysis_bench: summary\n")
        sum_s, rss, doc, sum_cpu = measured([sys.executable, TOOL, "summary", "--json", "--speed",
                                             trace], env)
        replay_cpu, decode_cpu, decode_max = engine_cpu(measured.stderr)
        # What runs on one thread: the replay, and the Python around the engine
        # (start, metadata, the summary); the decoders run beside them.
        serial_cpu = replay_cpu + max(0.0, sum_cpu - replay_cpu - decode_cpu)
        s = json.loads(doc)
        sys.stderr.write("analysis_bench: report\n")
        rep_s, rep_rss, _, rep_cpu = measured([sys.executable, TOOL, "report", "-q", trace, "-o",
                                         os.path.join(out, "report")], env)
        py_s = None
        if a.python:
            sys.stderr.write("analysis_bench: summary --engine python\n")
            py_s, _, pdoc, _ = measured([sys.executable, TOOL, "summary", "--json", "--engine",
                                         "python", trace], env)
            if json.loads(pdoc) != s:
                sys.stderr.write("analysis_bench: the engines' summaries differ\n")
                return 1
        live = None
        if a.live:
            ltrace = os.path.join(out, "live")
            shutil.rmtree(ltrace, ignore_errors=True)
            sys.stderr.write("analysis_bench: recording %d live regions\n" % a.live)
            record(a.host, a.live, ltrace, mode="live")
            _, lrss, ldoc, _ = measured([sys.executable, TOOL, "summary", "--json", ltrace], env)
            ls = json.loads(ldoc)
            if ls["leaks"]["regions"] != a.live:
                sys.stderr.write("analysis_bench: %d live regions read, %d expected\n"
                                 % (ls["leaks"]["regions"], a.live))
                return 1
            live = {"regions": a.live, "events": ls["events"], "summary_peak_rss_bytes": lrss}
        events = s["events"]
        fig = {
            "events": events,
            "discarded_events": s["discarded_events"],
            "trust_complete": s["trust"]["complete"],
            "record_s": rec_s,
            "babeltrace2_dummy_s": bt_s,
            "babeltrace2_events_per_s": events / bt_s,
            "summary_s": sum_s,
            "summary_events_per_s": events / sum_s,
            "summary_over_babeltrace2": bt_s / sum_s,
            "summary_peak_rss_bytes": rss,
            "summary_cpu_s": sum_cpu,
            "summary_cores_busy": sum_cpu / sum_s,
            "summary_replay_cpu_s": replay_cpu,
            "summary_decode_cpu_s": decode_cpu,
            "summary_decode_max_cpu_s": decode_max,
            "summary_serial_cpu_s": serial_cpu,
            "summary_cores_work_allows": sum_cpu / serial_cpu if serial_cpu else None,
            "cores": os.cpu_count(),
            "python_engine_s": py_s,
            "live": live,
            "report_s": rep_s,
            "report_peak_rss_bytes": rep_rss,
            "report_over_summary": rep_s / sum_s,
            "report_cpu_s": rep_cpu,
            "report_cpu_over_summary_cpu": rep_cpu / sum_cpu if sum_cpu else None,
        }
        if a.json:
            json.dump(fig, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print("hostmem-analyze on %d events (%d discarded), wall clock, same trace, same run"
                  % (events, fig["discarded_events"]))
            print("  babeltrace2 -o dummy      %8.2f s  %10.0f events/s" % (bt_s, fig["babeltrace2_events_per_s"]))
            print("  summary --json            %8.2f s  %10.0f events/s" % (sum_s, fig["summary_events_per_s"]))
            print("  summary / babeltrace2 speed ratio  %.2f   (R3: >= 1.0)" % fig["summary_over_babeltrace2"])
            print("  summary peak RSS          %8.1f MiB" % (rss / 2**20))
            print("  summary CPU               %8.2f s   (%.2f of %d cores busy)"
                  % (sum_cpu, fig["summary_cores_busy"], fig["cores"]))
            print("    its threads: replay %.2f s, decoders %.2f s (busiest %.2f s), the rest "
                  "%.2f s: one thread does %.2f s, so the work keeps at most %.2f cores busy"
                  % (replay_cpu, decode_cpu, decode_max, serial_cpu - replay_cpu, serial_cpu,
                     fig["summary_cores_work_allows"] or 0))
            print("  report                    %8.2f s  (report / summary %.2f; R3: <= 1.5), peak RSS %.1f MiB"
                  % (rep_s, fig["report_over_summary"], rep_rss / 2**20))
            print("    report CPU %.2f s, %.2f times the summary's"
                  % (rep_cpu, fig["report_cpu_over_summary_cpu"] or 0))
        if live is not None and not a.json:
            print("  summary of a host with %d live regions (%d events): peak RSS %.1f MiB "
                  "(R3: <= 256 MiB for 100k)" % (live["regions"], live["events"],
                                                 live["summary_peak_rss_bytes"] / 2**20))
        if py_s is not None and not a.json:
            print("  summary --engine python   %8.2f s  %10.0f events/s (same summary)"
                  % (py_s, events / py_s))
        if fig["discarded_events"]:
            sys.stderr.write("analysis_bench: events were discarded: the figures are not valid\n")
            return 1
        return 0
    finally:
        if not a.keep and not a.out:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
