"""Who holds memory (R5): committed bytes by call stack, at the peak and at the end.

The attribution rule (docs/analysis.md, "Who holds memory"), per process:

- a stack is the tuple of return addresses of a ``hostmem:stack`` event,
  innermost first; an operation without one has the stack ``(caller,)``;
- a region belongs to the stack of its reserve (a region first seen in a
  statedump: to ``(caller,)``) for its whole life;
- every committed byte of a region counts for that owner, whichever call
  committed or decommitted it: a commit adds the bytes it newly committed, a
  decommit takes away the bytes it gave back, a release or destroy what the
  region still held;
- the peak table is the per-stack table at the moment the process's
  committed bytes first reached their maximum.

This module is the whole rule, kept small so that another implementation
(the C replay engine) can mirror it line by line: a dict of pending stack
events, a dict stack -> [committed_bytes, regions], and a snapshot taken
lazily, just before the first decrease that follows a new peak (a rising
trace pays nothing per event for it).
"""


class StackBook:
    __slots__ = ("pending", "held", "peak", "peak_pending")

    def __init__(self):
        self.pending = {}   # seq -> frames of a stack event waiting for its operation
        self.held = {}      # stack -> [committed_bytes, live regions it owns]
        self.peak = {}      # stack -> (committed_bytes, regions) at the peak
        self.peak_pending = False

    # -- stack events ------------------------------------------------------
    def stack_event(self, seq, frames):
        if seq is not None and frames:
            self.pending[seq] = tuple(frames)

    def take(self, seq, caller):
        """The stack of the operation with `seq` (its stack event, or its caller)."""
        frames = self.pending.pop(seq, None)
        if frames:
            return frames
        return (caller,) if caller else ()

    def drop(self, seq):
        """An operation that owns no region (commit, failure) consumes its stack event."""
        self.pending.pop(seq, None)

    # -- regions -----------------------------------------------------------
    # An empty stack (no stack event and no caller) is attributed to no one.
    def reserve(self, stack, committed=0):
        if not stack:
            return
        e = self.held.get(stack)
        if e is None:
            self.held[stack] = [committed, 1]
        else:
            e[0] += committed
            e[1] += 1

    def move(self, stack, delta):
        """A commit (delta > 0) or decommit (delta < 0) in a region owned by `stack`."""
        if not delta or not stack:
            return
        if delta < 0:
            self._settle()
        e = self.held.get(stack)
        if e is None:
            self.held[stack] = [delta, 0]
        else:
            e[0] += delta

    def release(self, stack, committed):
        """The region is gone (release, destroy), still holding `committed` bytes."""
        self._settle()
        e = self.held.get(stack) if stack else None
        if e is None:
            return
        e[0] -= committed
        e[1] -= 1
        if e[0] <= 0 and e[1] <= 0:
            del self.held[stack]

    # -- the peak -------------------------------------------------------------
    def new_peak(self):
        """The process's committed bytes just reached a new maximum."""
        self.peak_pending = True

    def _settle(self):
        if self.peak_pending:
            self.peak = self.table()
            self.peak_pending = False

    def table(self):
        """stack -> (committed_bytes, regions), stacks holding committed bytes only."""
        return {s: (e[0], e[1]) for s, e in self.held.items() if e[0] > 0}

    def finish(self):
        self._settle()
        self.pending = {}
