"""A latency histogram that merges exactly and stays small.

Values below 1024 have a bucket each; above, a bucket covers the values that
share their 10 most significant bits (relative width below 0.1 %), so a
histogram of any number of values has at most about 512 buckets per power of
two.  Two histograms merge by adding counts: the merge of the histograms of
two sets of values is the histogram of their union, whatever the order or
the grouping (per trace, per worker), which is what lets traces be analysed
apart and summed (docs/analysis.md, R7).  Percentiles are nearest-rank over
the buckets and answer a bucket's lowest value (exact below 1024); the
maximum is kept exactly.
"""

SIGNIFICANT_BITS = 10
_EXACT = 1 << SIGNIFICANT_BITS


def bucket(v):
    """The lowest value of v's bucket (v >= 0)."""
    if v < _EXACT:
        return v
    shift = v.bit_length() - SIGNIFICANT_BITS
    return (v >> shift) << shift


class Hist:
    __slots__ = ("counts", "n", "max", "total")

    def __init__(self):
        self.counts = {}
        self.n = 0
        self.max = 0
        self.total = 0

    def add(self, v, k=1):
        v = int(v)
        if v < 0:
            v = 0
        b = v if v < _EXACT else bucket(v)
        self.counts[b] = self.counts.get(b, 0) + k
        self.n += k
        self.total += v * k
        if v > self.max:
            self.max = v

    def append(self, v):  # array-like spelling, for callers that used a list
        self.add(v)

    def extend(self, other):
        self.merge(other)

    def merge(self, other):
        c = self.counts
        for b, k in other.counts.items():
            c[b] = c.get(b, 0) + k
        self.n += other.n
        self.total += other.total
        if other.max > self.max:
            self.max = other.max
        return self

    def __len__(self):
        return self.n

    def percentiles(self, ps):
        """{p: nearest-rank percentile} for p in ps (0 when empty)."""
        import math
        out = {}
        if not self.n:
            return {p: 0 for p in ps}
        items = sorted(self.counts.items())
        for p in ps:
            # round(): 99.9 / 100 * 1000 is 999.0000000000001 in floating point
            rank = max(1, min(self.n, math.ceil(round(p * self.n / 100.0, 6))))
            seen = 0
            for b, k in items:
                seen += k
                if seen >= rank:
                    out[p] = b
                    break
        return out

    def values(self):
        """(bucket, count) in ascending order, for plots."""
        return sorted(self.counts.items())

    def to_json(self):
        return {"n": self.n, "max": self.max, "total": self.total,
                "buckets": [[b, k] for b, k in sorted(self.counts.items())]}

    @classmethod
    def from_json(cls, d):
        h = cls()
        h.n, h.max, h.total = d["n"], d["max"], d["total"]
        h.counts = {b: k for b, k in d["buckets"]}
        return h

    def __eq__(self, other):
        return isinstance(other, Hist) and (self.counts, self.n, self.max) == (
            other.counts, other.n, other.max)
