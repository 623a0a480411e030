"""A process's events in the order of their ``seq``.

Streams are merged by timestamp: one stream per CPU, each in its own time
order.  Two events of one process on two CPUs can reach the merge in the
other order than the process emitted them: their clocks disagree (CPUs whose
counters are not synchronised, a virtual machine that moves between hosts),
or a thread was preempted between taking its ``seq`` and its timestamp.
Replaying them in that order breaks the model (a reserve at an address whose
release is still to come).  ``seq`` is +1 for every event a process emits,
so it says which came first.

The rule (replay.c's "seq order" is the same one, for the C engine; the
differential test compares both engines):

* an event whose ``seq`` is the next one expected of its process, or below it
  (it came too late to wait for), passes; so does a process's first event;
* one past the next one expected waits until the missing ones arrive, or
  until the merge is WINDOW_NS past its timestamp, or while more than
  MAX_HELD events wait: then the missing seqs are taken for lost and the
  lowest waiting event goes, with every one that follows it without a gap;
* companion events (``stack``, ``malloc_debug``: the seq of the operation
  they belong to) and events without a ``seq`` pass at once;
* at the end every process's waiting events go, in seq order, processes in
  the order they first appeared.
"""

import heapq

WINDOW_NS = 100_000_000
MAX_HELD = 65536

_COMPANIONS = frozenset(("stack", "malloc_debug"))


def ordered(name):
    """Whether a hostmem event of this name (without the provider) waits for
    its turn in seq order."""
    return name not in _COMPANIONS


class _Proc:
    __slots__ = ("next", "heap")

    def __init__(self):
        self.next = None
        self.heap = []


def _release(p, force):
    """The lowest waiting event (whatever its seq when `force`), then every
    one that follows it without a gap."""
    out = []
    h = p.heap
    while h and (force or h[0][0] <= p.next):
        force = False
        seq, _, ev = heapq.heappop(h)
        if seq >= p.next:
            p.next = seq + 1
        out.append(ev)
    return out


def in_seq_order(events):
    """Yield `events` (dicts in time order, as reader.read makes them) with
    each process's events in seq order."""
    procs = {}
    held = 0
    order = 0
    for ev in events:
        name = ev["name"]
        if name == "discarded":
            yield ev
            continue
        ts = ev["ts"]
        if held:
            for q in procs.values():
                while q.heap and ts - q.heap[0][2]["ts"] > WINDOW_NS:
                    out = _release(q, True)
                    held -= len(out)
                    yield from out
        key = (ev.get("host"), ev.get("pid"))
        p = procs.get(key)
        if p is None:
            p = procs[key] = _Proc()
        seq = ev.get("seq")
        if seq is None or ":" in name or not ordered(name):
            yield ev
            continue
        if p.next is not None and seq > p.next:
            heapq.heappush(p.heap, (seq, order, ev))
            order += 1
            held += 1
            if held > MAX_HELD:
                out = _release(p, True)
                held -= len(out)
                yield from out
            continue
        if p.next is None or seq == p.next:
            p.next = seq + 1
        yield ev
        if p.heap:
            out = _release(p, False)
            held -= len(out)
            yield from out
    for p in procs.values():
        while p.heap:
            yield from _release(p, True)
