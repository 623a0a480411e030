"""hostmem-analyze: summary, report and diff of hostmem traces."""

import argparse
import json
import math
import os
import signal
import sys
import threading
import time

from . import model as model_mod
from . import progress
from . import output
from .output import OutputError


class UsageError(Exception):
    pass


class NoHostmemEvents(UsageError):
    """The traces hold no hostmem event."""


# The summary was printed, but some input file was damaged (docs/analysis.md).
EXIT_DAMAGED = 3
# Bad input, a bad option, an output that cannot be written.
EXIT_USAGE = 2
# Ctrl-C (SIGINT), as a shell reports it: 128 + 2.
EXIT_INTERRUPTED = 128 + signal.SIGINT
# What hostmem-profile writes into the trace directory about the command it
# ran (argv, pid, host, exit_status or signal): the summary reports it (T8).
COMMAND_FILE = "hostmem-command.json"


def _summary_module():
    from . import summary
    return summary


# A command record's fields and the types they must have (None allowed).
_COMMAND_TYPES = {"pid": int, "host": str, "exit_status": int, "signal": int,
                  "signal_name": str}


def _command_problem(c):
    """Why `c` is not a command record as hostmem-profile writes it, or None."""
    if not isinstance(c, dict):
        return "not a JSON object"
    argv = c.get("argv")
    if argv is not None and not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        return "argv is not a list of strings"
    for k, t in _COMMAND_TYPES.items():
        v = c.get(k)
        if v is not None and (not isinstance(v, t) or isinstance(v, bool)):
            return "%s is not a %s" % (k, "number" if t is int else "string")
    return None


def find_commands(paths, notes=None):
    """The command records under `paths`, one per trace directory that holds
    one (hostmem-profile writes it beside the trace it recorded), in path
    order.  A record that cannot be read or has fields of the wrong types is
    damaged: it is left out, and a one-line note naming it goes to `notes`."""
    found, seen = [], set()
    for path in paths:
        if os.path.isfile(path):
            path = os.path.dirname(path) or "."
        for root, dirs, files in os.walk(path):
            dirs.sort()
            if COMMAND_FILE not in files:
                continue
            name = os.path.join(root, COMMAND_FILE)
            real = os.path.realpath(name)
            if real in seen:
                continue
            seen.add(real)
            try:
                with open(name) as f:
                    c = json.load(f)
                why = _command_problem(c)
            except (OSError, ValueError) as e:
                why = getattr(e, "strerror", None) or str(e)
            if why:
                if notes is not None:
                    notes.append("%s: damaged command record (%s); the summary goes on "
                                 "without it" % (name, why))
                continue
            if c not in found:  # a copy of a trace (read once) holds the same record
                found.append(c)
    return found


def load(paths, temporary_ms=None, stats=None, jobs=None, scheduler=None):
    """Read the traces under `paths` and return (model, summary dict).

    Several traces are read apart and merged (fleet.py): on `jobs` local
    processes (default: every core; 1: one after the other, here), or on the
    Dask cluster at `scheduler`, so damage in one trace stops that trace
    alone.  One trace (and its copies) is read here, in this process."""
    try:
        from . import reader  # bt2 is needed only here: diff and the unit tests run without it
    except ImportError as e:
        raise UsageError("cannot import babeltrace2's Python bindings (%s): install python3-bt2 "
                         "and run with /usr/bin/python3" % e)
    tns = model_mod.DEFAULT_TEMPORARY_NS if temporary_ms is None else int(temporary_ms * 1e6)
    t0 = time.monotonic()
    n = 0
    groups, _ = reader.unique_traces(paths)
    dirs = [d for g in groups for d in g]
    if scheduler or len(groups) > 1:
        from . import fleet
        try:
            m = fleet.run(paths, tns, jobs=jobs, scheduler=scheduler)
        except RuntimeError as e:
            raise UsageError(str(e))
        trust = m.input_trust
        n = m.all.events
    else:
        m = None
        if engine_name() == "c":
            # The summary's modules (the symbolizer's ELF and DWARF readers
            # above all, a tenth of a second) load while the engine reads: its
            # threads run without the GIL.
            threading.Thread(target=_summary_module, daemon=True).start()
            m, trust = _c_engine(paths, tns)
            n = m.all.events if m is not None else 0
        if m is None:
            m = model_mod.Model(temporary_ns=tns)
            feed = m.feed
            trust = reader.new_trust()
            interrupts = output.interrupts
            for ev in progress.wrap(reader.read(paths, model_mod.FIELDS, trust), dirs):
                if interrupts:  # a Ctrl-C noted while babeltrace2 ran (output.on_sigint)
                    raise KeyboardInterrupt
                feed(ev)
                n += 1
    t1 = time.monotonic()
    output.check_interrupted()  # a Ctrl-C babeltrace2 took for damage: not a summary
    bad = trust["damage"] + trust["stopped"]
    if m.all.events == 0 and bad:
        # Nothing readable before the damage: the damage is the news.
        more = " (and %d more damaged files)" % (len(bad) - 1) if len(bad) > 1 else ""
        raise NoHostmemEvents("%s%s; no hostmem events before the damage" % (bad[0], more))
    if m.all.events == 0:
        raise NoHostmemEvents("%s: no hostmem events in the trace (was 'hostmem:*' enabled, "
                                "and did the program use libhostmem?)" % ", ".join(paths))
    from . import summary as summary_mod
    notes = []
    s = summary_mod.build(m, trust, find_commands(paths, notes))
    _say_input_trust(trust)
    for note in notes:
        sys.stderr.write("hostmem-analyze: %s\n" % note)
    if stats is not None:
        stats.update(records=n, read_s=t1 - t0, total_s=time.monotonic() - t0,
                     damaged=bool(trust["damage"] or trust["stopped"] or notes))
    return m, s


def engine_name():
    """`c` (the default: the C engine, engine.py) or `python` (reader.py's
    events into model.py), from --engine or HOSTMEM_ANALYZE_ENGINE."""
    return os.environ.get("HOSTMEM_ANALYZE_ENGINE", "c")


def _c_engine(paths, tns, keep_all_samples=False, strict=None, notes=None, where=""):
    """(model, trust) read by the C engine, or (None, None) when it cannot
    read this input (a one-line note says why when the layout is the reason;
    damaged input is left to babeltrace2 silently, which reports it).
    `strict` (default: HOSTMEM_ANALYZE_ENGINE_STRICT) makes that an error;
    `notes`, a list, receives the note instead of stderr (a fleet worker's
    note goes back to the client with its result); `where` names the worker."""
    from . import engine
    if strict is None:
        strict = bool(os.environ.get("HOSTMEM_ANALYZE_ENGINE_STRICT"))
    try:
        return engine.analyse(paths, tns, keep_all_samples)
    except engine.Unsupported as u:
        if strict:
            # tests: the C engine must read this input itself
            raise UsageError("the C engine cannot read %s%s: %s"
                             % (", ".join(paths), where, u.note or "decoding failed"))
        if u.note:
            note = "%s; reading with babeltrace2 instead (slower)" % u.note
            if notes is not None:
                notes.append(where + ": " + note if where else note)
            else:
                sys.stderr.write("hostmem-analyze: %s\n" % note)
        return None, None


def _say_input_trust(trust, result="the summary covers what precedes the damage and is "
                                   "marked incomplete"):
    """One line on stderr for damaged input (`result`: what it means for the
    output), one per duplicate trace."""
    for d in trust["duplicates"]:
        sys.stderr.write("hostmem-analyze: %s\n" % d)
    bad = trust["damage"] + trust["stopped"]
    if bad:
        more = " (and %d more damaged files)" % (len(bad) - 1) if len(bad) > 1 else ""
        sys.stderr.write("hostmem-analyze: %s%s; %s\n" % (bad[0], more, result))


def _out(text):
    """Write `text` on stdout, flushed: a write error (a full disk, a closed
    pipe's other errors) is one line, not a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise UsageError("cannot write the standard output (%s)" % (e.strerror or e))


def _summary(args):
    stats = {}
    _, s = load(args.traces, args.temporary_ms, stats, args.jobs, args.scheduler)
    if args.json:
        _out(json.dumps(s, indent=2, sort_keys=False) + "\n")
    else:
        _out(_summary_module().format_text(s))
    if args.speed:
        rate = stats["records"] / stats["read_s"] if stats["read_s"] else 0.0
        sys.stderr.write("read %d events in %.2f s (%.0f events/s); total with summary %.2f s\n"
                         % (stats["records"], stats["read_s"], rate, stats["total_s"]))
        from . import engine
        c = engine.last_cpu
        if c:
            # The engine's threads: how many cores its work could keep busy,
            # whatever else the machine runs (the replay is one thread).
            sys.stderr.write("engine CPU: replay thread %.2f s, decoder threads %.2f s (busiest "
                             "%.2f s)\n" % (c["replay_s"], c["decode_s"], c["decode_max_s"]))
    return EXIT_DAMAGED if stats.get("damaged") else 0


def _report(args):
    output.check_dir(args.output, args.traces)  # before the reading: it may take minutes
    stats = {}
    m, s = load(args.traces, args.temporary_ms, stats, args.jobs, args.scheduler)
    from . import report
    index = report.write(m, s, args.output)
    if not args.quiet:
        _out(_summary_module().format_text(s))
    _out("report: %s\n" % index)
    return EXIT_DAMAGED if stats.get("damaged") else 0


# What damaged input means for export's output (one line naming the file).
_EXPORT_DAMAGED = "the export holds what precedes the damage"


def _export(args):
    if args.scheduler:
        # One table, written here in trace order: nothing to hand to workers.
        raise UsageError("export: --scheduler is for summary and report; export reads its "
                         "traces in this process")
    output.check_file(args.output, args.traces)  # before anything is read or written
    from . import export, reader
    trust = reader.new_trust()
    try:
        if args.perfetto:
            counters, instants = export.write_perfetto(args.traces, args.output, trust)
            what = "%d counter points, %d instants" % (counters, instants)
        else:
            rows = export.write_csv(args.traces, args.output, trust)
            what = "%d rows" % rows
    except export.NoEvents:
        _say_input_trust(trust, _EXPORT_DAMAGED)
        raise NoHostmemEvents("%s: no hostmem events in the trace; nothing written to %s"
                              % (", ".join(args.traces), args.output))
    _say_input_trust(trust, _EXPORT_DAMAGED)
    sys.stderr.write("export: %s (%s)\n" % (args.output, what))
    return EXIT_DAMAGED if (trust["damage"] or trust["stopped"]) else 0


def _top(args):
    from . import top
    if args.interval <= 0:
        raise UsageError("--interval must be positive")
    iterations = 1 if args.once else args.iterations
    try:
        return top.run(args.url, interval=args.interval, iterations=iterations,
                       top_sites=args.sites, max_procs=args.processes)
    except top.TopError as e:
        raise UsageError(str(e))


def _diff(args):
    from . import diff
    docs = []
    for path in (args.base, args.new):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError("%s: not a summary JSON file (%s)"
                             % (path, getattr(e, "strerror", None) or e))
        why = diff.not_a_summary(doc)
        if why:
            raise UsageError("%s: not a summary JSON file (%s; `summary --json` writes one)"
                             % (path, why))
        docs.append(doc)
    text, regressions = diff.diff(docs[0], docs[1], threshold=args.threshold / 100.0)
    _out(text)
    return 1 if (regressions and args.fail_on_regression) else 0


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more, not %d" % n)
    return n


def _milliseconds(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text)
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError("must be a finite number >= 0, not %r" % text)
    return v


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, naming the option, with the documented status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, "%s: %s (see %s --help)\n" % (self.prog, message, self.prog))


def parser():
    p = _Parser(prog="hostmem-analyze",
                                description="Analyse LTTng traces of programs using hostmem.")
    sub = p.add_subparsers(dest="command", required=True)
    common = _Parser(add_help=False)
    common.add_argument("traces", nargs="+", metavar="TRACE",
                        help="trace directory (an lttng output or relayd tree; several allowed)")
    common.add_argument("--temporary-ms", type=_milliseconds, default=None,
                        help="a region released within this many ms is temporary (default 100)")
    common.add_argument("-j", "--jobs", type=_positive_int, default=None, metavar="N",
                        help="trace directories read in parallel (default: every core)")
    common.add_argument("--scheduler", metavar="ADDRESS",
                        help="read the trace directories on this Dask distributed scheduler "
                             "(e.g. tcp://host:8786)")
    common.add_argument("--engine", choices=("c", "python"), default=None,
                        help="c: decode and replay in C (default, or $HOSTMEM_ANALYZE_ENGINE); "
                             "python: babeltrace2's Python bindings and model.py, event by event")
    s = sub.add_parser("summary", parents=[common], help="print what happened")
    s.add_argument("--json", action="store_true", help="one JSON object (R1 in docs/analysis.md)")
    s.add_argument("--speed", action="store_true", help="print events/s read on stderr")
    s.set_defaults(func=_summary)
    r = sub.add_parser("report", parents=[common], help="write SVG plots and index.html")
    r.add_argument("-o", "--output", required=True, metavar="DIR")
    r.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    r.set_defaults(func=_report)
    e = sub.add_parser("export", parents=[common],
                       help="one row per event (gzip CSV), or --perfetto trace-event JSON")
    e.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="FILE.csv.gz, or FILE.json with --perfetto")
    e.add_argument("--perfetto", action="store_true",
                   help="Chrome trace-event JSON for ui.perfetto.dev: committed and reserved "
                        "bytes per process as counters, failures and decisions as instants")
    e.set_defaults(func=_export)
    t = sub.add_parser("top", help="follow an LTTng live session, per process, every second",
                       description="Follow an LTTng live session through lttng-relayd and show, "
                                   "per process: committed and reserved bytes, memory state, "
                                   "critical-level denials by level (task/appdomain/process), "
                                   "failed calls and the call sites holding the most committed "
                                   "bytes.  Ctrl-C ends it.  When the output is not a terminal, "
                                   "each refresh is printed as plain lines.")
    t.add_argument("url", metavar="URL",
                   help="the live session: net://RELAYD[:PORT]/host/HOSTNAME/SESSION (the "
                        "session created with `lttng create SESSION --live`)")
    t.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between refreshes (default 1)")
    t.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="stop after N refreshes (default: until Ctrl-C)")
    t.add_argument("--once", action="store_true", help="one refresh, then stop (--iterations 1)")
    t.add_argument("--sites", type=int, default=3, metavar="N",
                   help="call sites shown per process (default 3)")
    t.add_argument("--processes", type=int, default=10, metavar="N",
                   help="processes shown, most committed first (default 10)")
    t.set_defaults(func=_top)
    d = sub.add_parser("diff", help="compare two `summary --json` outputs")
    d.add_argument("base", metavar="BASE.json")
    d.add_argument("new", metavar="NEW.json")
    d.add_argument("--threshold", type=float, default=10.0,
                   help="percent change flagged as a regression (default 10)")
    d.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when a regression is flagged")
    d.set_defaults(func=_diff)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if getattr(args, "engine", None):
        # the environment carries it to fleet.py's worker processes
        os.environ["HOSTMEM_ANALYZE_ENGINE"] = args.engine
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, output.on_sigint)
    try:
        status = args.func(args)
        output.check_interrupted()
        return status
    except (UsageError, OutputError) as e:
        sys.stderr.write("hostmem-analyze: %s\n" % e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C: quietly, as a shell reports it; outputs were written to
        # temporary files, removed on the way here (output.atomic).
        _quiet_stdout()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as e:
        # Trace errors carry one line; everything else is a bug worth a traceback.
        if type(e).__name__ == "TraceError":
            sys.stderr.write("hostmem-analyze: %s\n" % e)
            return EXIT_USAGE
        raise
    finally:
        try:
            sys.stdout.flush()
        except OSError:
            _quiet_stdout()


def _quiet_stdout():
    """Point stdout at /dev/null, so that what is left in its buffer cannot
    fail again at exit (a closed pipe, a full disk)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
