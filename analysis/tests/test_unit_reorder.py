"""reorder.in_seq_order: the rule, event by event (replay.c has the same
one; test_order.py checks both engines on a recorded trace)."""

import unittest

from hostmem_analysis import reorder

MS = 1000000


def ev(seq, ts, name="reserve", pid=1):
    return {"name": name, "ts": ts, "host": "h", "pid": pid, "seq": seq}


def order(events):
    return [(e.get("pid"), e["name"], e.get("seq")) for e in reorder.in_seq_order(events)]


class InSeqOrder(unittest.TestCase):
    def test_in_order_passes_as_it_is(self):
        evs = [ev(s, s * MS) for s in range(1, 6)]
        self.assertEqual(order(evs), [(1, "reserve", s) for s in range(1, 6)])

    def test_a_later_seq_waits_for_the_ones_before_it(self):
        evs = [ev(1, 0), ev(3, 1 * MS), ev(4, 2 * MS), ev(2, 3 * MS), ev(5, 4 * MS)]
        self.assertEqual([s for _, _, s in order(evs)], [1, 2, 3, 4, 5])

    def test_processes_wait_apart(self):
        evs = [ev(1, 0, pid=1), ev(1, 0, pid=2), ev(3, 1, pid=1), ev(2, 2, pid=2), ev(2, 3, pid=1)]
        self.assertEqual(order(evs), [(1, "reserve", 1), (2, "reserve", 1), (2, "reserve", 2),
                                      (1, "reserve", 2), (1, "reserve", 3)])

    def test_a_gap_is_taken_for_lost_after_the_window(self):
        w = reorder.WINDOW_NS
        evs = [ev(1, 0), ev(3, 10), ev(4, 20), ev(9, w + 5), ev(10, w + 11), ev(5, w + 30)]
        # At w + 11, seq 3 (stamped 10) has waited longer than the window:
        # 3 and 4 go, seq 2 is taken for lost.  5 is then the next one
        # expected; 9 and 10 wait for 6-8 until the end.
        self.assertEqual([s for _, _, s in order(evs)], [1, 3, 4, 5, 9, 10])

    def test_too_late_passes_at_once(self):
        w = reorder.WINDOW_NS
        evs = [ev(1, 0), ev(3, 10), ev(4, w + 20), ev(2, w + 30)]
        self.assertEqual([s for _, _, s in order(evs)], [1, 3, 4, 2])

    def test_the_bound_on_waiting_events(self):
        n = reorder.MAX_HELD
        evs = [ev(1, 0)] + [ev(s, 1) for s in range(3, n + 4)]
        got = [s for _, _, s in order(evs)]
        self.assertEqual(got, [1] + list(range(3, n + 4)))

    def test_companions_and_other_events_pass(self):
        evs = [ev(1, 0), ev(3, 1, name="stack"), ev(3, 2), ev(3, 3, name="malloc_debug"),
               {"name": "lttng_ust_statedump:bin_info", "ts": 4, "host": "h", "pid": 1},
               {"name": "discarded", "ts": 5, "count": 3, "kind": "events"}, ev(2, 6)]
        self.assertEqual(order(evs), [(1, "reserve", 1), (1, "stack", 3), (1, "malloc_debug", 3),
                                      (1, "lttng_ust_statedump:bin_info", None),
                                      (None, "discarded", None), (1, "reserve", 2),
                                      (1, "reserve", 3)])

    def test_the_end_releases_everything_in_seq_order(self):
        evs = [ev(1, 0, pid=2), ev(5, 1, pid=2), ev(1, 2, pid=1), ev(4, 3, pid=1), ev(3, 4, pid=2)]
        self.assertEqual(order(evs), [(2, "reserve", 1), (1, "reserve", 1), (2, "reserve", 3),
                                      (2, "reserve", 5), (1, "reserve", 4)])


if __name__ == "__main__":
    unittest.main()
