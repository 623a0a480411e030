"""Unit tests: who holds memory (R5), the attribution rule on synthetic events (no bt2)."""

import unittest

from hostmem_analysis import model, summary

from .test_unit_model import Host, KiB, MiB


def stacked(h, frames, op, *args, **kw):
    """A hostmem:stack event with the seq of the operation `op` emits next."""
    h.events.append({"name": "stack", "ts": h.t, "host": h.host, "pid": h.pid,
                     "procname": h.procname, "seq": h.seq + 1, "frames": frames})
    return op(*args, **kw)


def entries(rows):
    return [(e["stack"], e["committed_bytes"], e["regions"]) for e in rows]


class Attribution(unittest.TestCase):
    def run_host(self):
        h = Host()
        a, b = (0xa1, 0xa2), (0xb1, 0xb2)
        stacked(h, a, h.reserve, 0x100000, MiB)           # region 1 belongs to a
        stacked(h, (0xc1,), h.commit, 0x100000, 256 * KiB)  # a commit stack moves nothing
        stacked(h, b, h.reserve, 0x200000, MiB)           # region 2 belongs to b
        stacked(h, (0xd1,), h.commit, 0x200000, 512 * KiB)
        h.commit(0x140000, 256 * KiB)                     # no stack event: still a's region
        # Peak here: a 512 KiB, b 512 KiB.
        h.decommit(0x100000, 128 * KiB)                   # a part goes back: a 384 KiB
        h.release(0x200000, MiB, 512 * KiB)               # b is gone
        h.reserve(0x300000, 64 * KiB, caller=0xdd)        # no stacks at all: the caller alone
        h.commit(0x300000, 64 * KiB)
        h.release(0x300000, 64 * KiB, 64 * KiB)
        h.reserve(0x400000, 64 * KiB, caller=0xee)        # reserved, never committed, leaked
        m = model.Model().feed_all(h.events)
        return m, summary.build(m)

    def test_peak_end_and_leaks_by_stack(self):
        m, s = self.run_host()
        self.assertEqual(s["peak"]["committed_bytes"], MiB)
        self.assertEqual(entries(s["peak"]["by_stack"]),
                         [(["0xa1", "0xa2"], 512 * KiB, 1), (["0xb1", "0xb2"], 512 * KiB, 1)])
        self.assertEqual(entries(s["end"]["by_stack"]), [(["0xa1", "0xa2"], 384 * KiB, 1)])
        self.assertEqual([(e["stack"], e["committed_bytes"], e["reserved_bytes"], e["regions"])
                          for e in s["leaks"]["by_stack"]],
                         [(["0xa1", "0xa2"], 384 * KiB, MiB, 1), (["0xee"], 0, 64 * KiB, 1)])
        (p,) = s["processes"]
        self.assertEqual(p["peak"]["by_stack"], s["peak"]["by_stack"])
        # Stack events take no seq of their own.
        self.assertEqual(p["seq_gaps"], 0)
        self.assertEqual(p["events_by_name"]["stack"], 4)

    def test_a_later_higher_peak_replaces_the_first(self):
        h = Host()
        stacked(h, (0xa1,), h.reserve, 0x100000, MiB)
        h.commit(0x100000, 256 * KiB)
        h.decommit(0x100000, 256 * KiB)                   # first maximum: a 256 KiB
        stacked(h, (0xb1,), h.reserve, 0x200000, MiB)
        h.commit(0x200000, 768 * KiB)                     # the peak: b 768 KiB, at the end
        s = summary.build(model.Model().feed_all(h.events))
        self.assertEqual(entries(s["peak"]["by_stack"]), [(["0xb1"], 768 * KiB, 1)])
        self.assertEqual(entries(s["end"]["by_stack"]), entries(s["peak"]["by_stack"]))

    def test_processes_sum_by_symbolic_stack(self):
        evs = []
        for pid in (1, 2):
            h = Host(pid=pid)
            stacked(h, (0xa1,), h.reserve, 0x100000, MiB)
            h.commit(0x100000, pid * 64 * KiB)
            evs += h.events
        evs.sort(key=lambda e: e["ts"])
        s = summary.build(model.Model().feed_all(evs))
        self.assertEqual(entries(s["peak"]["by_stack"]), [(["0xa1"], 192 * KiB, 2)])


if __name__ == "__main__":
    unittest.main()
