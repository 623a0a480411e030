"""hostmem-analyze top: follow an LTTng live session, per process, every second (R6).

The session is read through lttng-relayd with babeltrace2's
`src.ctf.lttng-live` source; its events feed the same model the summary
replays (model.py), and every refresh shows, per process: committed and
reserved bytes, the memory state of its managers, critical-level denials by
level, failed calls, and the call sites holding the most committed bytes.

A viewer that attaches to a session that already runs gets what the tracer
sends from then on (lttng-relayd's viewers start at the end): a process met
that way is marked, its bytes are right once its managers' next `totals`
event arrives, and its regions made before are not listed.  Start `top`
before `lttng start` to see everything.  When the session is on this
machine, `top` asks lttng to regenerate the statedump once it is attached,
so call sites resolve to function and line.

On a terminal the view is redrawn in place (the alternate screen, as `top`
does) and Ctrl-C gives the terminal back as it was; otherwise each refresh is
printed as plain lines, one snapshot after the other.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

from . import model as model_mod
from .summary import human_bytes
from .symbols import Symbolizer

# Worst first: a process shows the worst state of its managers.
_STATE_ORDER = {"low": 0, "neutral": 1, "high": 2}
_LEVELS = model_mod.LEVELS
# Terminal: alternate screen, cursor hidden; and back.
_ENTER = "\x1b[?1049h\x1b[?25l"
_LEAVE = "\x1b[?25h\x1b[?1049l"
_HOME_CLEAR = "\x1b[H\x1b[2J"


class TopError(Exception):
    """A one-line reason `top` cannot follow the session."""


def check_url(url):
    """A live session URL: net://HOST[:PORT]/host/HOSTNAME/SESSION."""
    parts = url.split("/")
    if not url.startswith(("net://", "net4://", "net6://")) or len(parts) < 6 or \
            parts[3] != "host" or not parts[4] or not parts[5]:
        raise TopError("%s: not an LTTng live session URL (net://RELAYD[:PORT]/host/HOSTNAME/"
                       "SESSION; `lttng list` names the session, the relay daemon's -L port "
                       "is PORT, 5344 by default)" % url)


def _root_cause(err):
    """The first line of the deepest cause of a babeltrace2 error (where it began)."""
    try:
        causes = [c.message for c in err]
    except TypeError:
        causes = []
    text = (causes[0] if causes else str(err)).strip().splitlines()
    return text[0] if text else "unknown error"


class Follower:
    """A babeltrace2 graph reading a live session into a Model."""

    def __init__(self, url):
        try:
            import bt2
            from . import reader
        except ImportError as e:
            raise TopError("cannot import babeltrace2's Python bindings (%s): install "
                           "python3-bt2 and run with /usr/bin/python3" % e)
        self.bt2 = bt2
        self.model = model_mod.Model(keep_all_samples=False)
        self.out = []
        self.events = 0
        graph = bt2.Graph()
        try:
            src = graph.add_component(
                bt2.find_plugin("ctf").source_component_classes["lttng-live"], "live",
                {"inputs": [url], "session-not-found-action": "continue"})
            mux = graph.add_component(bt2.find_plugin("utils").filter_component_classes["muxer"],
                                      "mux")
            self._shared = {"fields": model_mod.FIELDS, "out": self.out, "error": None}
            sink = graph.add_component(reader._Sink, "sink", obj=self._shared)
            for i, port in enumerate(src.output_ports.values()):
                graph.connect_ports(port, mux.input_ports["in%d" % i])
            graph.connect_ports(mux.output_ports["out"], sink.input_ports["in"])
        except bt2._Error as e:
            raise TopError("%s: cannot follow the session: %s" % (url, reader._one_line(e)))
        self.graph = graph
        self.url = url
        self.ended = False
        self.stop = False  # set by a signal handler: return at once

    def pump(self, until):
        """Read what the relay daemon has until the monotonic time `until`."""
        bt2 = self.bt2
        feed = self.model.feed
        while not self.ended and not self.stop and time.monotonic() < until:
            try:
                self.graph.run_once()
            except bt2.TryAgain:
                time.sleep(min(0.05, max(0.0, until - time.monotonic())))
            except bt2.Stop:
                if self._shared["error"] is not None:
                    raise self._shared["error"]
                self.ended = True
            except bt2._Error as e:
                why = _root_cause(e)
                if "onnect" in why:
                    why += (" (is lttng-relayd listening there? PORT is its live port, -L, "
                            "5344 by default)")
                raise TopError("%s: cannot follow the session: %s" % (self.url, why))
            if self.out:
                for ev in self.out:
                    feed(ev)
                self.events += len(self.out)
                self.out.clear()


class Sites:
    """Call sites of each process, resolved once (again when new objects load)."""

    def __init__(self):
        self._by_proc = {}

    def resolve(self, p, callers):
        known = self._by_proc.get(id(p))
        if known is None or known[0] != len(p.objects):
            known = (len(p.objects), Symbolizer(p.objects))
            self._by_proc[id(p)] = known
        return known[1].resolve(callers)


def regenerate_statedump(url):
    """Ask the local session daemon to send the statedump again (the loaded
    objects, for call sites).  Best effort: the session may be elsewhere."""
    if shutil.which("lttng") is None:
        return
    session = url.rstrip("/").split("/")[5]
    subprocess.run(["lttng", "--no-sessiond", "regenerate", "statedump", "--session=" + session],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def process_rows(m, sites, top_sites):
    """What a snapshot shows: one dict per process that has managers or did something."""
    rows = []
    for p in m.processes.values():
        if not p.events:
            continue
        states = [mg.state for mg in p.managers_by_addr.values() if mg.state in _STATE_ORDER]
        state = min(states, key=_STATE_ORDER.get) if states else "-"
        denied = {lv: 0 for lv in _LEVELS}
        for (_, level, decision), n in p.decisions.items():
            if decision == "denied" and level in denied:
                denied[level] += n
        failed = sum(p.failures.values())
        by_caller = {}
        for mg in p.managers_by_addr.values():
            for r in mg.regions.values():
                e = by_caller.setdefault(r.caller, [0, 0, 0])
                e[0] += r.committed_bytes()
                e[1] += r.size
                e[2] += 1
        best = sorted(by_caller.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))[:top_sites]
        names = sites.resolve(p, [c for c, _ in best]) if best else {}
        # Met in the middle: its first event is not its process's first.
        late = p.seq_min is not None and p.seq_min > 1
        rows.append({"label": p.label(), "pid": p.pid, "late": late, "committed": p.committed,
                     "reserved": p.reserved, "state": state, "denied": denied,
                     "failed": failed, "managers": len(p.managers_by_addr),
                     "sites": [(names.get(c, "?"), v[0], v[1], v[2]) for c, v in best]})
    rows.sort(key=lambda r: (-r["committed"], -r["reserved"], r["label"]))
    return rows


def render(url, follower, rows, rate, width, max_procs):
    """The snapshot as lines no wider than `width`."""
    m = follower.model
    lost = m.discarded_events
    head = "hostmem top  %s  %s  events %d (%d/s)%s" % (
        time.strftime("%H:%M:%S"), url, follower.events, rate,
        ("  DISCARDED %d: figures are lower bounds" % lost) if lost else "")
    lines = [head[:width]]
    if follower.ended:
        lines.append("the live session ended")
    if not rows:
        lines.append("waiting for hostmem events...")
        return lines
    cols = "%-28s %10s %10s %8s %8s %12s %6s" % ("PROCESS", "COMMITTED", "RESERVED", "STATE",
                                                 "MANAGERS", "DENIED t/a/p", "FAILED")
    lines.append(cols[:width])
    late = False
    for r in rows[:max_procs]:
        d = r["denied"]
        late = late or r["late"]
        lines.append(("%-28s %10s %10s %8s %8d %12s %6d" % (
            ("*" if r["late"] else "") + r["label"][-27 if r["late"] else -28:], human_bytes(r["committed"]), human_bytes(r["reserved"]), r["state"],
            r["managers"], "%d/%d/%d" % (d["task"], d["appdomain"], d["process"]),
            r["failed"]))[:width])
        for site, committed, reserved, n in r["sites"]:
            lines.append(("    %10s committed %10s reserved %4d region%s  %s" % (
                human_bytes(committed), human_bytes(reserved), n, "" if n == 1 else "s ",
                site))[:width])
    if len(rows) > max_procs:
        lines.append("(%d more processes)" % (len(rows) - max_procs))
    if late:
        lines.append(("* met after it started: bytes are right from its next totals event; "
                      "regions made before are not listed")[:width])
    return lines


def _size(out):
    """(columns, lines) of the terminal; 80 x 24 when it does not say."""
    try:
        size = os.get_terminal_size(out.fileno())
        return size.columns or 80, size.lines or 24
    except OSError:
        return 80, 24


def run(url, interval=1.0, iterations=None, top_sites=3, max_procs=10, out=None):
    """Follow `url`, refreshing every `interval` s, `iterations` times (None: until
    Ctrl-C or SIGTERM).  Returns the exit status."""
    out = out or sys.stdout
    check_url(url)
    follower = Follower(url)
    tty = out.isatty()
    sites = Sites()
    # Ctrl-C and SIGTERM end the loop between two reads, never inside the
    # decoder (an exception there would surface as a babeltrace2 error).
    def on_signal(_sig, _frame):
        follower.stop = True
    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    if tty:
        out.write(_ENTER)
        out.flush()
    try:
        n = 0
        last_events = 0
        next_at = time.monotonic() + interval
        while not follower.stop:
            follower.pump(next_at)
            if n == 0:
                regenerate_statedump(url)
            now = time.monotonic()
            next_at = max(next_at + interval, now)
            rate = (follower.events - last_events) / interval
            last_events = follower.events
            width, height = _size(out) if tty else (200, 0)
            lines = render(url, follower, process_rows(follower.model, sites, top_sites), rate,
                           width, max_procs)
            if tty:
                out.write(_HOME_CLEAR + "\n".join(lines[:max(1, height - 1)]))
            else:
                out.write("\n".join(lines) + "\n\n")
            out.flush()
            n += 1
            if (iterations is not None and n >= iterations) or follower.ended:
                break
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if tty:
            out.write(_LEAVE)
            out.flush()
    return 0
