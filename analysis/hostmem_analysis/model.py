"""Replay hostmem trace events into a model of each process's address space.

The model consumes plain dicts (see reader.py for their shape), in time
order, so tests can feed synthetic streams without babeltrace2.  Every event
dict has at least ``name`` (``reserve``, ``failure``, ...; statedump events
keep their provider: ``lttng_ust_statedump:bin_info``), ``ts`` (ns from the
clock origin), ``host``, ``pid`` and ``procname``; the other keys are the
event's payload fields, enums given by label.

What the model keeps, per process and merged over all of them:
  - per-operation counts, failures, bytes and latencies;
  - failures by operation, level, HRESULT and reason; critical decisions;
  - reserved and committed bytes over time (sum of the process's managers,
    taken from the totals each event carries), with their peaks;
  - memory-state intervals per manager;
  - every region (base, size, caller, committed pages) from reserve to
    release, so what is left at the end is a leak with its call site;
  - trust figures: discarded events and packets, gaps in ``seq``;
  - the manager's heaps (``malloc_*`` events): every live block with its call
    site and, for debug allocations, file and line, so what is left when the
    heap is destroyed or the trace ends is a heap leak; and the bytes the heap
    holds committed (the commits inside the regions ``malloc_region`` names),
    to give its share of the process's committed bytes.
"""

import bisect
from array import array

from .hist import Hist
from .stacks import StackBook

REGION_OPS = ("reserve", "commit", "decommit", "release", "protect", "reset",
              "reset_undo", "query")
# The operations R1 reports (query is debug-level and often off).
REPORTED_OPS = ("reserve", "commit", "decommit", "release", "protect", "reset",
                "reset_undo")
LEVELS = ("task", "appdomain", "process")
DECISIONS = ("granted", "granted_from_reserve", "denied")
STATES = ("high", "neutral", "low")

# The payload fields the model reads, per event.  reader.py reads these and
# nothing else: field access is what reading a trace costs.  Both layouts:
# v1 events carry totals, region_size and duration_ns; v2 events (docs/
# tracing.md) carry start_ns (the reader turns it into duration_ns) and
# leave totals to replay and to hostmem:totals.  Only a reserve's caller is
# kept.
_OP_FIELDS = ("seq", "manager", "address", "size", "base", "region_size", "hr",
              "duration_ns", "start_ns")
_TOTALS = ("committed_bytes", "reserved_bytes")
FIELDS = {
    "reserve": _OP_FIELDS + _TOTALS + ("caller", "alloc_type"),
    "commit": _OP_FIELDS + _TOTALS + ("alloc_type",),
    "decommit": _OP_FIELDS + _TOTALS,
    "release": _OP_FIELDS + _TOTALS,
    "protect": _OP_FIELDS,
    "reset": _OP_FIELDS,
    "reset_undo": _OP_FIELDS,
    "query": _OP_FIELDS,
    "totals": ("seq", "manager") + _TOTALS,
}
FIELDS.update({
    "failure": ("seq", "manager", "op", "hr", "reason", "os_errno", "address",
                "size", "level"),
    "critical_decision": ("seq", "manager", "resource", "level", "request_bytes",
                          "committed_bytes", "level_ceiling", "limit",
                          "decision", "waited_ns"),
    "memory_state": ("seq", "manager", "old_state", "state", "committed_bytes",
                     "limit"),
    "address_space": ("seq", "manager", "action", "start", "size", "hr",
                      "external_bytes"),
    "manager_create": ("seq", "manager", "commit_limit", "address_space_limit",
                       "page_size"),
    "manager_destroy": ("seq", "manager", "regions", "reserved_bytes",
                        "committed_bytes"),
    "region_state": ("seq", "manager", "base", "region_size", "committed_bytes",
                     "protect", "caller"),
    # v1/v2 carry file and line in malloc_alloc; v3 in malloc_debug, which
    # the reader joins to its malloc_alloc (the model never sees it).
    "malloc_alloc": ("seq", "heap", "address", "size", "level", "caller", "file", "line"),
    "malloc_debug": ("seq", "file", "line"),
    "stack": ("seq", "frames"),
    "malloc_free": ("seq", "heap", "address", "size", "caller"),
    "malloc_create": ("seq", "manager", "heap", "type"),
    "malloc_destroy": ("seq", "manager", "heap", "live_blocks", "live_bytes"),
    "malloc_region": ("seq", "manager", "heap", "base", "size", "live"),
    "write_watch": ("seq", "manager", "base", "size", "pages", "reset", "read", "hr",
                    "duration_ns"),
    "guard_hit": ("seq", "manager", "address", "base"),
    "lttng_ust_statedump:bin_info": ("baddr", "memsz", "path", "is_pic"),
    "lttng_ust_statedump:build_id": ("baddr", "build_id"),
    "lttng_ust_statedump:debug_link": ("baddr", "filename"),
    "lttng_ust_dl:dlopen": ("baddr", "memsz", "path"),
    "lttng_ust_statedump:procname": ("procname",),
})

MEM_RESERVE = 0x2000
# How far a manager's replay holds (Manager.replay; replay.c: the same values).
# Its totals are the replay's own while it is exact; hostmem:totals is read
# racily by the library (another thread's charge may already be in it while
# that thread's region event comes later in seq order), so it only sets them
# when the replay cannot be exact (docs/tracing.md, "Totals").
REPLAY_LATE = 0   # met after its creation: its first totals event sets its books
REPLAY_EXACT = 1  # replayed from its creation or from that first totals event
REPLAY_LOST = 2   # events lost since (a seq gap, an operation on a region it
                  # never saw): every totals event sets its books again
# Samples a process keeps for the memory plot (more than a plot has pixels).
MAX_SAMPLES = 16384

DEFAULT_TEMPORARY_NS = 100 * 1000 * 1000  # released within 100 ms


class OpStats:
    """Counts, failures, bytes and latencies (a mergeable histogram) of one operation."""

    __slots__ = ("count", "failed", "bytes", "latencies")

    def __init__(self):
        self.count = 0
        self.failed = 0
        self.bytes = 0
        self.latencies = Hist()

    def merge(self, other):
        self.count += other.count
        self.failed += other.failed
        self.bytes += other.bytes
        self.latencies.merge(other.latencies)


class Region:
    """One reservation: where, how big, who made it, which pages are committed.

    ``committed`` holds the committed page ranges as sorted, disjoint
    [start, end) pairs.  A region first seen in a statedump (region_state)
    only says how many bytes are committed, not where: that count is
    ``unplaced`` until a whole-region decommit clears it.
    """

    __slots__ = ("base", "size", "caller", "t_reserve", "committed", "unplaced",
                 "from_statedump", "heap", "stack")

    def __init__(self, base, size, caller, ts, from_statedump=False, stack=None):
        self.stack = stack if stack is not None else ((caller,) if caller else ())  # R5 owner
        self.heap = None  # the heap that took this region (malloc_region), if any
        self.base = base
        self.size = size
        self.caller = caller
        self.t_reserve = ts
        self.committed = []
        self.unplaced = 0
        self.from_statedump = from_statedump

    def committed_bytes(self):
        placed = sum(e - s for s, e in self.committed)
        return min(self.size, placed + self.unplaced)

    def placed(self):
        return sum(e - s for s, e in self.committed)

    def commit(self, start, end):
        """Mark [start, end) committed; returns the bytes newly committed."""
        before = self.committed_bytes()
        runs = self.committed
        out = []
        for s, e in runs:
            if e < start or s > end:
                out.append((s, e))
            else:
                start = min(start, s)
                end = max(end, e)
        out.append((start, end))
        out.sort()
        self.committed = out
        return self.committed_bytes() - before

    def decommit(self, start, end):
        """Mark [start, end) decommitted; returns the bytes given back."""
        before = self.committed_bytes()
        if start <= self.base and end >= self.base + self.size:
            self.committed = []
            self.unplaced = 0
            return before
        out = []
        for s, e in self.committed:
            if e <= start or s >= end:
                out.append((s, e))
                continue
            if s < start:
                out.append((s, start))
            if e > end:
                out.append((end, e))
        self.committed = out
        return before - self.committed_bytes()


class Manager:
    """One hostmem_manager of one process."""

    __slots__ = ("addr", "regions", "bases", "reserved", "committed", "created",
                 "destroyed", "commit_limit", "address_space_limit", "page_size",
                 "state", "state_since", "state_ns", "first_ts", "last_ts",
                 "totals_known", "replay")

    def __init__(self, addr, ts):
        self.addr = addr
        self.regions = {}
        self.bases = []
        self.reserved = 0
        self.committed = 0
        self.created = None
        self.destroyed = None
        self.commit_limit = 0
        self.address_space_limit = 0
        self.page_size = 4096
        self.state = None
        self.state_since = ts
        self.state_ns = {}
        self.first_ts = ts
        self.last_ts = ts
        self.totals_known = False
        self.replay = REPLAY_LATE

    def find(self, addr):
        """The live region holding `addr`, or None."""
        i = bisect.bisect_right(self.bases, addr) - 1
        if i < 0:
            return None
        r = self.regions[self.bases[i]]
        return r if addr < r.base + r.size else None

    def add(self, region):
        old = self.regions.get(region.base)
        if old is None:
            bisect.insort(self.bases, region.base)
        self.regions[region.base] = region

    def remove(self, base):
        r = self.regions.pop(base, None)
        if r is not None:
            i = bisect.bisect_left(self.bases, base)
            del self.bases[i]
        return r

    def lost(self):
        """Events of this manager may be missing: from now on its totals
        events set its books (REPLAY_LOST); a manager met late still waits
        for its first."""
        if self.replay == REPLAY_EXACT:
            self.replay = REPLAY_LOST

    def set_state(self, state, ts):
        if self.state is not None:
            self.state_ns[self.state] = self.state_ns.get(self.state, 0) + ts - self.state_since
        self.state = state
        self.state_since = ts

    def close_state(self, ts):
        if self.state is not None and ts > self.state_since:
            self.state_ns[self.state] = self.state_ns.get(self.state, 0) + ts - self.state_since
            self.state_since = ts


class Leak:
    """A region still reserved when the trace (or its manager) ended."""

    __slots__ = ("base", "size", "committed", "caller", "t_reserve", "manager",
                 "from_statedump", "site", "stack")

    def __init__(self, region, manager):
        self.stack = region.stack
        self.base = region.base
        self.size = region.size
        self.committed = region.committed_bytes()
        self.caller = region.caller
        self.t_reserve = region.t_reserve
        self.manager = manager
        self.from_statedump = region.from_statedump
        self.site = None


class HeapBlock:
    """A block of a heap: live while allocated; a leak when still live at the end."""

    __slots__ = ("heap", "address", "size", "caller", "file", "line", "ts", "at_end", "stack")

    def __init__(self, heap, address, size, caller, file, line, ts, stack=None):
        self.at_end = False  # live when the trace ended (its heap never destroyed)
        self.stack = stack
        self.heap = heap
        self.address = address
        self.size = size
        self.caller = caller
        self.file = file or None
        self.line = line or 0
        self.ts = ts


class Heap:
    """One hostmem_malloc of one process."""

    __slots__ = ("addr", "manager", "live", "created", "destroyed")

    def __init__(self, addr, ts):
        self.addr = addr
        self.manager = None
        self.live = {}
        self.created = None
        self.destroyed = None


class HeapStats:
    """The heaps of a process (or of all of them)."""

    def __init__(self):
        self.heaps = 0
        self.allocs = 0
        self.frees = 0
        self.alloc_bytes = 0
        self.unknown_frees = 0      # frees of blocks the trace never saw allocated
        self.leaks = []             # HeapBlock, live at the end or at destroy
        self.live_at_crash = []     # HeapBlock a process killed by a signal still held (T8)
        self.committed = 0          # bytes committed inside heap regions now
        self.peak_committed = 0
        self.committed_at_peak = 0  # heap bytes when the process's committed peaked

    def merge(self, other):
        self.heaps += other.heaps
        self.allocs += other.allocs
        self.frees += other.frees
        self.alloc_bytes += other.alloc_bytes
        self.unknown_frees += other.unknown_frees
        self.leaks.extend(other.leaks)
        self.live_at_crash.extend(other.live_at_crash)
        self.committed += other.committed
        self.peak_committed += other.peak_committed
        self.committed_at_peak += other.committed_at_peak


class Stats:
    """Everything counted over a set of events; one per process, plus "all"."""

    def __init__(self, keep_samples=True):
        self.keep_samples = keep_samples
        self.events = 0
        self.events_by_name = {}
        self.commit_limits = set()  # of every manager seen, destroyed ones included
        self.first_ts = None
        self.last_ts = None
        self.ops = {op: OpStats() for op in REGION_OPS}
        # (op, level, hr, reason) -> count
        self.failures = {}
        # (resource, level, decision) -> count
        self.decisions = {}
        self.decision_wait_ns = 0
        self.state_ns = {}
        self.reserved = 0
        self.committed = 0
        self.peak_reserved = 0
        self.peak_reserved_ts = None
        self.peak_committed = 0
        self.peak_committed_ts = None
        # Samples of (ts, reserved, committed), one per change.
        self.t_ts = array("q")
        self.t_reserved = array("q")
        self.t_committed = array("q")
        # (ts, op, hr) of each failure, for plots.
        self.failure_marks = []
        # (ts, old_state, state) per memory_state event, for plots.
        self.state_changes = []
        self.leaks = []
        self.leaks_at_destroy = []
        # T8: regions a process still held when it was killed (a crash): not leaks.
        self.live_at_crash = []
        self.temporary = {}          # caller -> [regions, bytes] released within the threshold
        self.temporary_life = Hist() # their lifetimes
        self.lifetimes = 0           # regions whose release was seen
        self.size_hist = {}          # bit_length(size) -> count
        self.untracked = 0           # ops on regions the trace never showed
        self.address_space = {}      # (action, hr) -> count
        self.managers = 0
        self.heap = HeapStats()
        # W3: write-watch calls (reads, resets, pages returned, pages reset) and guard hits
        self.win32 = {"reads": 0, "resets": 0, "pages": 0, "reset_pages": 0, "guard_hits": 0}

    def touch(self, ts):
        # Events arrive in time order, except where seq order put a process's
        # event before one stamped earlier (reorder.py): the span is the
        # earliest and the latest stamp.
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def move(self, ts, d_reserved, d_committed):
        self.reserved += d_reserved
        self.committed += d_committed
        if self.keep_samples:
            # A sample is the state from its stamp on; seq order can bring an
            # event stamped before the last sample (reorder.py), and the state
            # it makes holds from that sample on, not before: samples never
            # step back in time.
            self.t_ts.append(self.t_ts[-1] if self.t_ts and ts < self.t_ts[-1] else ts)
            self.t_reserved.append(self.reserved)
            self.t_committed.append(self.committed)
            if len(self.t_ts) >= MAX_SAMPLES:
                self._halve_samples()
        if self.reserved > self.peak_reserved:
            self.peak_reserved = self.reserved
            self.peak_reserved_ts = ts
        if self.committed > self.peak_committed:
            self.peak_committed = self.committed
            self.peak_committed_ts = ts
            self.heap.committed_at_peak = self.heap.committed


    def merge(self, other, series=True):
        """Add another Stats' figures (R7: partial results merge exactly).

        `series`: also take over its totals over time (a process, which
        lives in one part); the fleet-wide series is rebuilt by fleet.py."""
        self.events += other.events
        for src, dst in ((other.events_by_name, self.events_by_name),
                         (other.failures, self.failures), (other.decisions, self.decisions),
                         (other.state_ns, self.state_ns), (other.size_hist, self.size_hist),
                         (other.address_space, self.address_space), (other.win32, self.win32)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
        self.commit_limits |= other.commit_limits
        if other.first_ts is not None and (self.first_ts is None or other.first_ts < self.first_ts):
            self.first_ts = other.first_ts
        if other.last_ts is not None and (self.last_ts is None or other.last_ts > self.last_ts):
            self.last_ts = other.last_ts
        for op, st in other.ops.items():
            self.ops[op].merge(st)
        self.decision_wait_ns += other.decision_wait_ns
        self.failure_marks.extend(other.failure_marks)
        self.state_changes.extend(other.state_changes)
        self.leaks.extend(other.leaks)
        self.leaks_at_destroy.extend(other.leaks_at_destroy)
        self.live_at_crash.extend(other.live_at_crash)
        for c, (n, b) in other.temporary.items():
            t = self.temporary.setdefault(c, [0, 0])
            t[0] += n
            t[1] += b
        self.temporary_life.merge(other.temporary_life)
        self.lifetimes += other.lifetimes
        self.untracked += other.untracked
        self.managers += other.managers
        self.heap.merge(other.heap)
        if series:
            for t, r, c in zip(other.t_ts, other.t_reserved, other.t_committed):
                self.move(t, r - self.reserved, c - self.committed)
        return self

    def _halve_samples(self):
        """Keep memory bounded: pairs of samples become one, the pair's first
        time and each series' maximum (the envelope a plot draws); the last
        sample stays as it is, so the end value is exact."""
        ts, rs, cs = self.t_ts, self.t_reserved, self.t_committed
        n = len(ts) - 1
        nts, nrs, ncs = array("q"), array("q"), array("q")
        for i in range(0, n - 1, 2):
            nts.append(ts[i])
            nrs.append(max(rs[i], rs[i + 1]))
            ncs.append(max(cs[i], cs[i + 1]))
        if n % 2:
            nts.append(ts[n - 1])
            nrs.append(rs[n - 1])
            ncs.append(cs[n - 1])
        nts.append(ts[n])
        nrs.append(rs[n])
        ncs.append(cs[n])
        self.t_ts, self.t_reserved, self.t_committed = nts, nrs, ncs

    def mark_failure(self, ts, op, hr):
        marks = self.failure_marks
        marks.append((ts, op, hr))
        if len(marks) >= MAX_SAMPLES:
            del marks[1::2]  # every other one: the plot shows where, not how many


class Process(Stats):
    """One traced process: (host, pid), its managers and its loaded objects."""

    def __init__(self, host, pid, procname):
        super().__init__()
        self.host = host
        self.pid = pid
        self.procname = procname
        self.managers_by_addr = {}
        self.seq_min = None
        self.seq_max = None
        self.seq_count = 0
        self.discarded_events = 0
        self.discarded_packets = 0
        # Loaded objects from lttng_ust_statedump: baddr -> dict
        self.objects = {}
        self.heaps_by_addr = {}
        # heap -> regions (manager, base) it took
        self.heap_regions = {}
        # T8: (manager, regions destroy reported, regions the trace shows)
        # where the two differ: events of that manager were lost.
        self.destroy_mismatch = []
        # The signal that killed the process, when the recorder knows it.
        self.crash_signal = None
        self.stacks = StackBook()  # R5: committed bytes by the stack that reserved them
        # The events of manager 0 (NULL), which is not one (Model.feed).
        self.null_manager = None

    def move(self, ts, d_reserved, d_committed):
        peak = self.peak_committed
        super().move(ts, d_reserved, d_committed)
        if self.peak_committed > peak:
            self.stacks.new_peak()

    def lost_events(self):
        """Events of this process are missing (a gap in its seq): no replay
        of its managers is exact any more."""
        for m in self.managers_by_addr.values():
            m.lost()

    def heap_moved(self, delta):
        h = self.heap
        h.committed += delta
        if h.committed > h.peak_committed:
            h.peak_committed = h.committed

    @property
    def seq_gaps(self):
        if self.seq_count == 0:
            return 0
        return max(0, self.seq_max - self.seq_min + 1 - self.seq_count)

    def merge(self, other, series=True):
        super().merge(other, series)
        self.procname = self.procname or other.procname
        self.managers_by_addr.update(other.managers_by_addr)
        if other.seq_count:
            if self.seq_count:
                self.seq_min = min(self.seq_min, other.seq_min)
                self.seq_max = max(self.seq_max, other.seq_max)
            else:
                self.seq_min, self.seq_max = other.seq_min, other.seq_max
            self.seq_count += other.seq_count
        self.discarded_events += other.discarded_events
        self.discarded_packets += other.discarded_packets
        self.objects.update(other.objects)
        self.heaps_by_addr.update(other.heaps_by_addr)
        self.heap_regions.update(other.heap_regions)
        self.destroy_mismatch.extend(other.destroy_mismatch)
        self.crash_signal = self.crash_signal or other.crash_signal
        return self

    def label(self):
        name = self.procname or "?"
        pid = "?" if self.pid is None else self.pid
        return "%s/%s[%s]" % (self.host or "?", name, pid)


class Model:
    """Feed events with `feed` (time order), then call `finish`."""

    def __init__(self, temporary_ns=DEFAULT_TEMPORARY_NS, keep_all_samples=False):
        self.temporary_ns = temporary_ns
        self.processes = {}
        # Plots draw processes, not the sum; a part of a fleet keeps the
        # sum's samples too, for the merge (fleet.py).
        self.all = Stats(keep_samples=keep_all_samples)
        self._last_key = None
        self._last_proc = None
        self.discarded_events = 0
        self.discarded_packets = 0
        self.other_events = 0
        self.finished = False
        # The last region operation: (base, region_size, reserved, committed),
        # None where unknown (Model._region_op).
        self.last_op = None

    # -- dispatch ---------------------------------------------------------
    def process(self, ev):
        key = (ev.get("host"), ev.get("pid"))
        if key == self._last_key and ev.get("procname"):
            return self._last_proc
        p = self.processes.get(key)
        if p is None:
            p = Process(key[0], key[1], ev.get("procname"))
            self.processes[key] = p
        elif ev.get("procname") and (not p.procname or ev["name"] == "lttng_ust_statedump:procname"):
            p.procname = ev["procname"]
        self._last_key, self._last_proc = key, p
        return p

    def feed(self, ev):
        name = ev["name"]
        if name == "discarded":
            self._discarded(ev)
            return
        p = self.process(ev)
        ts = ev["ts"]
        if ":" in name:
            self._statedump(p, name, ev)
            return
        handler = _HANDLERS.get(name) or _HEAP_HANDLERS.get(name)
        if handler is None and name != "stack":
            self.other_events += 1
            return
        seq = ev.get("seq")
        if name == "stack":
            # T7: the stack of the operation with the same seq, which follows
            # (it takes no seq of its own).
            p.events += 1
            self.all.events += 1
            p.events_by_name[name] = p.events_by_name.get(name, 0) + 1
            self.all.events_by_name[name] = self.all.events_by_name.get(name, 0) + 1
            p.stacks.stack_event(seq, ev.get("frames"))
            return
        if seq is not None:
            if p.seq_count == 0:
                p.seq_min = p.seq_max = seq
            else:
                if seq < p.seq_min:
                    p.seq_min = seq
                if seq > p.seq_max:
                    if seq > p.seq_max + 1:
                        p.lost_events()
                    p.seq_max = seq
            p.seq_count += 1
        p.events += 1
        self.all.events += 1
        p.events_by_name[name] = p.events_by_name.get(name, 0) + 1
        self.all.events_by_name[name] = self.all.events_by_name.get(name, 0) + 1
        p.touch(ts)
        self.all.touch(ts)
        if name in _HEAP_HANDLERS:
            _HEAP_HANDLERS[name](self, p, ev, ts)
            return
        addr = ev.get("manager")
        m = p.managers_by_addr.get(addr)
        if m is None and addr == 0:
            # NULL: a call without a manager, or a hostmem_create that
            # failed.  Its events count (a failure is a failure), but it is
            # no manager: not counted, never to be destroyed (T8).
            m = p.null_manager
            if m is None:
                m = p.null_manager = Manager(0, ts)
        elif m is None:
            m = Manager(addr, ts)
            p.managers_by_addr[m.addr] = m
            p.managers += 1
            self.all.managers += 1
        m.last_ts = ts
        handler(self, p, m, ev, ts)

    def feed_all(self, events):
        for ev in events:
            self.feed(ev)
        return self

    def _discarded(self, ev):
        n = ev.get("count") or 0
        kind = ev.get("kind")
        target = self.process(ev) if ev.get("pid") is not None else None
        if kind == "packets":
            self.discarded_packets += n
            if target is not None:
                target.discarded_packets += n
        else:
            self.discarded_events += n
            if target is not None:
                target.discarded_events += n

    def _statedump(self, p, name, ev):
        base = ev.get("baddr")
        if name in ("lttng_ust_statedump:bin_info", "lttng_ust_dl:dlopen"):
            o = p.objects.setdefault(base, {})
            o.update(baddr=base, memsz=ev.get("memsz", 0), path=ev.get("path"),
                     is_pic=bool(ev.get("is_pic", 1)))
        elif name == "lttng_ust_statedump:build_id":
            p.objects.setdefault(base, {"baddr": base})["build_id"] = ev.get("build_id")
        elif name == "lttng_ust_statedump:debug_link":
            p.objects.setdefault(base, {"baddr": base})["debug_link"] = ev.get("filename")

    # -- accounting -------------------------------------------------------
    def _totals(self, p, m, ev, ts):
        """Follow the manager totals the event carries (after the call)."""
        r = ev.get("reserved_bytes")
        c = ev.get("committed_bytes")
        m.totals_known = True
        dr = 0 if r is None else r - m.reserved
        dc = 0 if c is None else c - m.committed
        if dr or dc:
            m.reserved += dr
            m.committed += dc
            p.move(ts, dr, dc)
            self.all.move(ts, dr, dc)

    def _replay(self, p, m, ts, dr, dc):
        """Layout v2: the totals move by what replay computed."""
        if dr or dc:
            m.reserved += dr
            m.committed += dc
            p.move(ts, dr, dc)
            self.all.move(ts, dr, dc)

    def _resync(self, p, m, ev, ts):
        """hostmem:totals: the manager's own books, read racily by the library
        (see REPLAY_EXACT); they set the replay's only when it cannot be exact."""
        if m.replay == REPLAY_EXACT:
            m.totals_known = True
            return
        self._totals(p, m, ev, ts)
        if m.replay == REPLAY_LATE:
            m.replay = REPLAY_EXACT

    @staticmethod
    def _span(ev, m, op):
        """(start, length) of the pages an operation touched.

        v1 events carry the rounded result (base, region_size); v2 events the
        arguments, rounded here as the library rounds them (S4-S6).
        """
        if "region_size" in ev and ev.get("region_size") is not None and op != "query":
            base = ev.get("base") or ev.get("address") or 0
            return base, ev.get("region_size") or ev.get("size") or 0
        page = m.page_size or 4096
        addr = ev.get("address") or 0
        size = ev.get("size") or 0
        if op == "reserve":
            base = ev.get("base") or 0
            if addr:
                return base, -(-(addr + size) // page) * page - base
            return base, -(-size // page) * page
        if op == "release":
            return addr, 0
        start = addr - addr % page
        return start, -(-(addr + size) // page) * page - start

    def _region_op(self, p, m, ev, ts):
        """Replay a region operation; `last_op` keeps what export's row says of
        it (docs/analysis.md; replay.c keeps the same in hme_model.facts): the
        pages it acted on, and the manager's books after it when the replay
        knows them (not before a manager met late has had its first totals)."""
        base, size = self._region_replay(p, m, ev, ts)
        books = (None, None) if m.replay == REPLAY_LATE else (m.reserved, m.committed)
        self.last_op = (base, size) + books

    def _region_replay(self, p, m, ev, ts):
        """(base, size) of the pages a successful operation acted on (size
        None: a region the replay never saw), (None, None) for a failure."""
        op = ev["name"]
        st = p.ops[op]
        st.count += 1
        d = ev.get("duration_ns")
        if d is not None:
            st.latencies.append(d)
        v1 = "committed_bytes" in ev
        ok = ev.get("hr", "S_OK") == "S_OK"
        book = p.stacks
        if not ok:
            book.drop(ev.get("seq"))
            st.failed += 1
            if v1:
                self._totals(p, m, ev, ts)
            elif op == "commit" and (ev.get("alloc_type") or 0) & MEM_RESERVE:
                # A reserve-and-commit whose commit failed gave its new
                # region back (untraced): the v2 event names that region.
                reg = m.remove(ev.get("address") or 0)
                if reg is not None:
                    book.release(reg.stack, reg.committed_bytes())
                    self._replay(p, m, ts, -reg.size, -reg.committed_bytes())
            return None, None
        base, size = self._span(ev, m, op)
        span = (base, size)
        dr = dc = 0
        if op == "reserve":
            st.bytes += size
            reg = Region(base, size, ev.get("caller"), ts,
                         stack=book.take(ev.get("seq"), ev.get("caller")))
            book.reserve(reg.stack)
            m.add(reg)
            dr = size
            b = size.bit_length()
            p.size_hist[b] = p.size_hist.get(b, 0) + 1
        elif op == "release":
            reg = m.remove(base)
            if reg is None:
                reg = m.find(base)
                if reg is not None:
                    m.remove(reg.base)
            if reg is None:
                p.untracked += 1
                m.lost()  # a region the replay never saw
                st.bytes += size
                span = (base - base % (m.page_size or 4096), None)  # its base page (S7)
            else:
                span = (reg.base, reg.size)
                if reg.heap is not None:
                    p.heap_moved(-reg.committed_bytes())
                book.release(reg.stack, reg.committed_bytes())
                st.bytes += size or reg.size
                dr, dc = -reg.size, -reg.committed_bytes()
                if not reg.from_statedump:
                    p.lifetimes += 1
                    life = ts - reg.t_reserve
                    if life <= self.temporary_ns:
                        t = p.temporary.get(reg.caller)
                        if t is None:
                            p.temporary[reg.caller] = [1, reg.size]
                        else:
                            t[0] += 1
                            t[1] += reg.size
                        p.temporary_life.add(life)
        elif op in ("commit", "decommit"):
            if op == "commit":
                book.drop(ev.get("seq"))
            reg = m.find(base)
            if op == "decommit" and not v1 and not ev.get("size"):
                # size 0: the whole region (S6), which starts at that page
                if reg is None:
                    span = (base, None)
                else:
                    base, size = span = (reg.base, reg.size)
            st.bytes += size
            if reg is None:
                p.untracked += 1
                m.lost()  # a region the replay never saw
            elif op == "commit":
                dc = reg.commit(base, base + size)
            else:
                dc = -reg.decommit(base, base + size)
            if reg is not None:
                book.move(reg.stack, dc)
                if reg.heap is not None:
                    p.heap_moved(dc)
        elif op != "query":
            st.bytes += size
        else:
            span = (None, None)  # the event names the run it found
        if v1:
            self._totals(p, m, ev, ts)
        else:
            self._replay(p, m, ts, dr, dc)
        return span

    def _failure(self, p, m, ev, ts):
        key = (ev.get("op"), ev.get("level"), ev.get("hr"), ev.get("reason"))
        p.failures[key] = p.failures.get(key, 0) + 1
        p.mark_failure(ts, ev.get("op"), ev.get("hr"))

    def _decision(self, p, m, ev, ts):
        key = (ev.get("resource"), ev.get("level"), ev.get("decision"))
        p.decisions[key] = p.decisions.get(key, 0) + 1
        p.decision_wait_ns += ev.get("waited_ns") or 0

    def _memory_state(self, p, m, ev, ts):
        if m.state is None:
            # The state before the first change held since the manager began.
            m.state = ev.get("old_state")
            m.state_since = m.created if m.created is not None else m.first_ts
        m.set_state(ev.get("state"), ts)
        p.state_changes.append((ts, ev.get("old_state"), ev.get("state")))

    def _address_space(self, p, m, ev, ts):
        key = (ev.get("action"), ev.get("hr"))
        p.address_space[key] = p.address_space.get(key, 0) + 1

    def _create(self, p, m, ev, ts):
        m.created = ts
        m.state_since = ts
        m.totals_known = True
        m.replay = REPLAY_EXACT
        m.commit_limit = ev.get("commit_limit") or 0
        if m.commit_limit:
            p.commit_limits.add(m.commit_limit)
        m.address_space_limit = ev.get("address_space_limit") or 0
        m.page_size = ev.get("page_size") or m.page_size

    def _destroy(self, p, m, ev, ts):
        # T8: destroy counts the regions it found live; a manager the trace
        # saw from its creation must show as many, or releases were lost.
        n = ev.get("regions")
        if n is not None and m.created is not None and n != len(m.bases):
            p.destroy_mismatch.append((m.addr, n, len(m.bases)))
        m.close_state(ts)
        m.destroyed = ts
        # The manager leaves the books here: its time in each state goes now.
        for s, ns in m.state_ns.items():
            p.state_ns[s] = p.state_ns.get(s, 0) + ns
        m.state_ns = {}
        m.state = None
        for base in list(m.bases):
            reg = m.regions[base]
            if reg.heap is not None:
                p.heap_moved(-reg.committed_bytes())
            p.stacks.release(reg.stack, reg.committed_bytes())
            p.leaks_at_destroy.append(Leak(reg, m.addr))
        m.regions.clear()
        m.bases.clear()
        dr, dc = -m.reserved, -m.committed
        m.reserved = m.committed = 0
        p.move(ts, dr, dc)
        self.all.move(ts, dr, dc)
        # A later manager may reuse the address: start afresh.
        p.managers_by_addr.pop(m.addr, None)  # (manager 0 is not there)

    def _region_state(self, p, m, ev, ts):
        base = ev.get("base")
        if base in m.regions:
            return
        m.lost()  # a live region the replay never saw (made untraced, A5)
        reg = Region(base, ev.get("region_size") or 0, ev.get("caller"), ts,
                     from_statedump=True)
        reg.unplaced = ev.get("committed_bytes") or 0
        p.stacks.reserve(reg.stack, reg.committed_bytes())
        m.add(reg)
        # Totals of a manager first seen through a statedump: until an
        # operation reports its real totals, the live regions are all we know.
        if not m.totals_known:
            dr = reg.size
            dc = reg.unplaced
            m.reserved += dr
            m.committed += dc
            p.move(ts, dr, dc)
            self.all.move(ts, dr, dc)

    # -- the end ----------------------------------------------------------
    def finish(self):
        if self.finished:
            return self
        self.finished = True
        all_ = self.all
        for p in self.processes.values():
            p.stacks.finish()
            end = p.last_ts
            for m in p.managers_by_addr.values():
                if end is not None:
                    m.close_state(end)
                for base in m.bases:
                    p.leaks.append(Leak(m.regions[base], m.addr))
            for m in p.managers_by_addr.values():
                for s, ns in m.state_ns.items():
                    p.state_ns[s] = p.state_ns.get(s, 0) + ns
            for h in p.heaps_by_addr.values():
                for b in h.live.values():
                    b.at_end = True
                p.heap.leaks.extend(h.live.values())
                h.live = {}
            all_.heap.merge(p.heap)
            for op, st in p.ops.items():
                all_.ops[op].merge(st)
            for src, dst in ((p.failures, all_.failures), (p.decisions, all_.decisions),
                             (p.size_hist, all_.size_hist), (p.state_ns, all_.state_ns),
                             (p.address_space, all_.address_space)):
                for k, v in src.items():
                    dst[k] = dst.get(k, 0) + v
            all_.decision_wait_ns += p.decision_wait_ns
            all_.failure_marks.extend(p.failure_marks)
            all_.state_changes.extend(p.state_changes)
            all_.leaks.extend(p.leaks)
            all_.leaks_at_destroy.extend(p.leaks_at_destroy)
            for c, (n, b) in p.temporary.items():
                t = all_.temporary.setdefault(c, [0, 0])
                t[0] += n
                t[1] += b
            all_.temporary_life.merge(p.temporary_life)
            all_.lifetimes += p.lifetimes
            all_.untracked += p.untracked
        return self

    def mark_crashed(self, pid, signal_name, host=None):
        """T8: the process `pid` (on `host`, when given) was killed by a signal:
        the regions it held at the end are live at the crash, not leaks.
        Regions destroy freed stay leaks.  Call after finish().  Returns
        whether the process is in the trace."""
        found = False
        for p in self.processes.values():
            if p.pid != pid or (host and p.host and p.host != host):
                continue
            found = True
            p.crash_signal = signal_name
            if not p.leaks:
                continue
            moved = {(lk.manager, lk.base, lk.t_reserve) for lk in p.leaks}
            p.live_at_crash.extend(p.leaks)
            self.all.live_at_crash.extend(p.leaks)
            p.leaks = []
            self.all.leaks = [lk for lk in self.all.leaks
                              if (lk.manager, lk.base, lk.t_reserve) not in moved]
        for p in self.processes.values():
            if p.crash_signal is None or not p.heap.leaks:
                continue
            # Heap blocks of heaps never destroyed: held at the crash too.
            held = [b for b in p.heap.leaks if b.at_end]
            if not held:
                continue
            keys = {(b.heap, b.address, b.ts) for b in held}
            p.heap.leaks = [b for b in p.heap.leaks if not b.at_end]
            p.heap.live_at_crash.extend(held)
            self.all.heap.live_at_crash.extend(held)
            self.all.heap.leaks = [b for b in self.all.heap.leaks
                                   if (b.heap, b.address, b.ts) not in keys]
        return found

    def sorted_processes(self):
        return sorted(self.processes.values(),
                      key=lambda p: (p.host or "", p.first_ts or 0, p.pid or 0))

    def hosts(self):
        return sorted({p.host or "?" for p in self.processes.values()})


# -- heaps ----------------------------------------------------------------

def _heap(p, ev, ts):
    addr = ev.get("heap")
    h = p.heaps_by_addr.get(addr)
    if h is None:
        h = Heap(addr, ts)
        p.heaps_by_addr[addr] = h
        p.heap.heaps += 1
    return h


def _malloc_create(model, p, ev, ts):
    addr = ev.get("heap")
    old = p.heaps_by_addr.pop(addr, None)
    if old is not None:  # a new heap at a destroyed one's address
        p.heap.leaks.extend(old.live.values())
    h = _heap(p, ev, ts)
    h.created = ts
    h.manager = ev.get("manager")


def _malloc_destroy(model, p, ev, ts):
    h = _heap(p, ev, ts)
    h.destroyed = ts
    # Blocks the host never freed: destroy took them with the heap.
    p.heap.leaks.extend(h.live.values())
    h.live = {}
    del p.heaps_by_addr[h.addr]


def _malloc_alloc(model, p, ev, ts):
    h = _heap(p, ev, ts)
    hs = p.heap
    hs.allocs += 1
    size = ev.get("size") or 0
    hs.alloc_bytes += size
    addr = ev.get("address")
    old = h.live.get(addr)
    if old is not None:  # its free was lost: count the block once
        hs.unknown_frees += 1
    h.live[addr] = HeapBlock(h.addr, addr, size, ev.get("caller"), ev.get("file"),
                             ev.get("line"), ts, p.stacks.take(ev.get("seq"), ev.get("caller")))


def _malloc_free(model, p, ev, ts):
    addr = ev.get("address")
    if not addr:
        return
    h = _heap(p, ev, ts)
    p.heap.frees += 1
    if h.live.pop(addr, None) is None:
        p.heap.unknown_frees += 1


def _malloc_region(model, p, ev, ts):
    if not ev.get("live"):
        return  # a region given back leaves the heap's books with its release event
    _heap(p, ev, ts)
    m = p.managers_by_addr.get(ev.get("manager"))
    if m is None:
        return
    reg = m.regions.get(ev.get("base"))
    if reg is None:
        return
    if reg.heap is None:
        reg.heap = ev.get("heap")
        p.heap_moved(reg.committed_bytes())


def _write_watch(model, p, m, ev, ts):
    """W3: a get_write_watch (read 1) or reset_write_watch (read 0)."""
    if ev.get("hr", "S_OK") != "S_OK":
        return  # its failure event counts it
    pages = ev.get("pages") or 0
    for st in (p, model.all):
        w = st.win32
        if ev.get("read"):
            w["reads"] += 1
            w["pages"] += pages
            if ev.get("reset"):
                w["reset_pages"] += pages
        else:
            w["resets"] += 1


def _guard_hit(model, p, m, ev, ts):
    for st in (p, model.all):
        st.win32["guard_hits"] += 1


_HEAP_HANDLERS = {
    "malloc_create": _malloc_create,
    "malloc_destroy": _malloc_destroy,
    "malloc_alloc": _malloc_alloc,
    "malloc_free": _malloc_free,
    "malloc_region": _malloc_region,
}

_HANDLERS = {op: Model._region_op for op in REGION_OPS}
_HANDLERS.update({
    "totals": Model._resync,
    "failure": Model._failure,
    "critical_decision": Model._decision,
    "memory_state": Model._memory_state,
    "address_space": Model._address_space,
    "manager_create": Model._create,
    "manager_destroy": Model._destroy,
    "region_state": Model._region_state,
    "write_watch": _write_watch,
    "guard_hit": _guard_hit,
})
