"""Unit tests: the model, summary and diff on synthetic event streams (no bt2)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

from hostmem_analysis import diff, model, summary

KiB = 1024
MiB = 1024 * KiB


class Host:
    """Emits the events one process's manager would, with consistent totals."""

    def __init__(self, pid=100, host="h1", procname="prog", manager=0x5000, t0=1_000_000_000,
                 limit=0):
        self.pid, self.host, self.procname, self.manager = pid, host, procname, manager
        self.t = t0
        self.seq = 0
        self.events = []
        self.reserved = 0
        self.committed = 0
        self.ev("manager_create", commit_limit=limit, address_space_limit=0, page_size=4096)

    def ev(self, name, dt=1000, **fields):
        self.t += dt
        self.seq += 1
        e = {"name": name, "ts": self.t, "host": self.host, "pid": self.pid,
             "procname": self.procname, "seq": self.seq, "manager": self.manager}
        e.update(fields)
        self.events.append(e)
        return e

    def op(self, name, base, size, hr="S_OK", duration=500, caller=0x1234, dt=1000, level="task"):
        return self.ev(name, dt=dt, address=base, size=size, base=base, region_size=size,
                       level=level, hr=hr, duration_ns=duration,
                       committed_bytes=self.committed, reserved_bytes=self.reserved, caller=caller)

    def reserve(self, base, size, caller=0x1234, dt=1000):
        self.reserved += size
        return self.op("reserve", base, size, caller=caller, dt=dt)

    def commit(self, base, size, level="task"):
        self.committed += size
        return self.op("commit", base, size, level=level)

    def decommit(self, base, size):
        self.committed -= size
        return self.op("decommit", base, size)

    def release(self, base, size, committed, dt=1000):
        self.reserved -= size
        self.committed -= committed
        return self.op("release", base, size, dt=dt)

    def fail(self, name, base, size, hr, reason, level="task"):
        self.op(name, base, size, hr=hr, level=level)
        self.ev("failure", op=name, hr=hr, reason=reason, os_errno=0, address=base, size=size,
                level=level)


def replay(*hosts, shuffle_by_time=True, **kw):
    evs = [e for h in hosts for e in h.events]
    evs.sort(key=lambda e: e["ts"])
    m = model.Model(**kw).feed_all(evs)
    return m, summary.build(m)


class ModelTest(unittest.TestCase):
    def test_counts_bytes_failures_peaks(self):
        h = Host()
        h.reserve(0x10000, 1 * MiB)
        h.commit(0x10000, 256 * KiB)
        h.commit(0x50000, 128 * KiB)
        h.decommit(0x10000, 64 * KiB)
        h.op("protect", 0x50000, 64 * KiB)
        h.op("reset", 0x50000, 64 * KiB)
        h.fail("commit", 0x10000, 4 * MiB, "E_OUTOFMEMORY", "limit_denied", level="appdomain")
        h.fail("release", 0x20000, 0, "HOSTMEM_E_INVALID_ADDRESS", "not_region_base", level="none")
        h.release(0x10000, 1 * MiB, 320 * KiB)
        m, s = replay(h)
        ops = s["ops"]
        self.assertEqual(ops["reserve"], dict(ops["reserve"], count=1, failed=0, bytes=MiB))
        self.assertEqual((ops["commit"]["count"], ops["commit"]["failed"], ops["commit"]["bytes"]),
                         (3, 1, 384 * KiB))
        self.assertEqual(ops["decommit"]["bytes"], 64 * KiB)
        self.assertEqual((ops["release"]["count"], ops["release"]["failed"],
                          ops["release"]["bytes"]), (2, 1, MiB))
        self.assertEqual(ops["protect"]["count"], 1)
        self.assertEqual(ops["reset"]["bytes"], 64 * KiB)
        self.assertEqual(s["failures"]["by_hresult"],
                         {"E_OUTOFMEMORY": 1, "HOSTMEM_E_INVALID_ADDRESS": 1})
        self.assertEqual(s["failures"]["by_level"]["appdomain"], 1)
        self.assertEqual(s["failures"]["by_level"]["task"], 0)
        self.assertEqual(s["failures"]["by_reason"],
                         {"limit_denied": 1, "not_region_base": 1})
        self.assertEqual(s["peak_reserved_bytes"], MiB)
        self.assertEqual(s["peak_committed_bytes"], 384 * KiB)
        self.assertEqual(s["leaks"]["regions"], 0)
        self.assertEqual(s["end_committed_bytes"], 0)
        self.assertEqual(s["seq_gaps"], 0)
        self.assertEqual(s["events"], len(h.events))
        self.assertEqual(sum(s["events_by_name"].values()), s["events"])
        self.assertEqual(s["events_by_name"]["reserve"], sum(e["name"] == "reserve" for e in h.events))

    def test_heap_leaks_by_call_site_and_file_line_and_share_of_committed(self):
        h = Host()
        heap = 0x7000
        h.ev("malloc_create", heap=heap, type=1)
        # The heap's meta region and a segment, committed through the manager.
        h.reserve(0x100000, 1 * MiB, caller=0x999)
        h.commit(0x100000, 64 * KiB)
        h.ev("malloc_region", heap=heap, base=0x100000, size=1 * MiB, live=1)
        h.reserve(0x200000, 1 * MiB, caller=0x999)
        h.ev("malloc_region", heap=heap, base=0x200000, size=1 * MiB, live=1)
        h.commit(0x200000, 128 * KiB)
        # The host's own region beside it.
        h.reserve(0x400000, 1 * MiB, caller=0x555)
        h.commit(0x400000, 192 * KiB)

        def alloc(addr, size, caller, file="", line=0):
            h.ev("malloc_alloc", heap=heap, address=addr, size=size, level="task", caller=caller,
                 file=file, line=line)

        alloc(0x200010, 100, 0xaaa, "gc.c", 42)
        alloc(0x200080, 100, 0xaaa, "gc.c", 42)
        alloc(0x200100, 300, 0xaaa, "gc.c", 77)
        alloc(0x200400, 50, 0xbbb)
        alloc(0x200500, 60, 0xbbb)
        h.ev("malloc_free", heap=heap, address=0x200500, size=64, caller=0xccc)
        h.ev("malloc_free", heap=heap, address=0, size=0, caller=0xccc)
        _, s = replay(h)
        hp = s["heap"]
        self.assertEqual((hp["heaps"], hp["allocs"], hp["frees"]), (1, 5, 1))
        self.assertEqual((hp["leaks"]["blocks"], hp["leaks"]["bytes"]), (4, 550))
        sites = {e["site"]: (e["blocks"], e["bytes"]) for e in hp["leaks"]["by_site"]}
        self.assertEqual(sites, {"0xaaa": (3, 500), "0xbbb": (1, 50)})
        lines = {(e["file"], e["line"]): (e["blocks"], e["bytes"]) for e in hp["leaks"]["by_file_line"]}
        self.assertEqual(lines, {("gc.c", 42): (2, 200), ("gc.c", 77): (1, 300)})
        self.assertEqual(hp["committed_bytes"], 192 * KiB)
        self.assertEqual(hp["committed_at_peak_bytes"], 192 * KiB)
        self.assertEqual(hp["share_of_committed"]["at_peak"], 0.5)
        self.assertIn("gc.c:42", summary.format_text(s))

    def test_heap_destroy_makes_live_blocks_leaks_and_releases_leave_the_heap_books(self):
        h = Host()
        heap = 0x7000
        h.ev("malloc_create", heap=heap, type=1)
        h.reserve(0x200000, 1 * MiB)
        h.commit(0x200000, 128 * KiB)
        h.ev("malloc_region", heap=heap, base=0x200000, size=1 * MiB, live=1)
        h.ev("malloc_alloc", heap=heap, address=0x200010, size=24, level="process", caller=0xaaa,
             file="a.c", line=3)
        h.ev("malloc_alloc", heap=heap, address=0x200030, size=24, level="task", caller=0xaaa,
             file="", line=0)
        h.ev("malloc_free", heap=heap, address=0x200030, size=32, caller=0xaaa)
        h.ev("malloc_destroy", heap=heap, live_blocks=1, live_bytes=32)
        h.ev("malloc_region", heap=heap, base=0x200000, size=1 * MiB, live=0)
        h.release(0x200000, 1 * MiB, 128 * KiB)
        # A new heap at the same address starts afresh.
        h.ev("malloc_create", heap=heap, type=0)
        h.ev("malloc_alloc", heap=heap, address=0x200010, size=8, level="task", caller=0xbbb,
             file="", line=0)
        h.ev("malloc_free", heap=heap, address=0x200010, size=16, caller=0xbbb)
        _, s = replay(h)
        hp = s["heap"]
        self.assertEqual(hp["heaps"], 2)
        self.assertEqual((hp["leaks"]["blocks"], hp["leaks"]["bytes"]), (1, 24))
        self.assertEqual(hp["leaks"]["by_file_line"][0]["file"], "a.c")
        self.assertEqual(hp["committed_bytes"], 0)
        self.assertEqual(hp["peak_committed_bytes"], 128 * KiB)
        self.assertEqual(hp["unknown_frees"], 0)

    def test_latency_percentiles_nearest_rank(self):
        h = Host()
        for i in range(1, 1001):
            h.op("protect", 0x10000, 4096, duration=i)
        _, s = replay(h)
        lat = s["ops"]["protect"]["latency_ns"]
        self.assertEqual((lat["p50"], lat["p90"], lat["p99"], lat["p99_9"], lat["max"]),
                         (500, 900, 990, 999, 1000))

    def test_leaks_grouped_by_call_site(self):
        h = Host()
        for i in range(3):
            h.reserve(0x100000 * (i + 1), 128 * KiB, caller=0xaaa)
            h.commit(0x100000 * (i + 1), 64 * KiB)
        for i in range(2):
            h.reserve(0x1000000 * (i + 1), 256 * KiB, caller=0xbbb)
        h.reserve(0x9000000, 64 * KiB, caller=0xaaa)
        h.release(0x9000000, 64 * KiB, 0)
        _, s = replay(h)
        lk = s["leaks"]
        self.assertEqual((lk["regions"], lk["reserved_bytes"], lk["committed_bytes"]),
                         (5, 3 * 128 * KiB + 2 * 256 * KiB, 3 * 64 * KiB))
        sites = {e["site"]: (e["regions"], e["reserved_bytes"]) for e in lk["by_caller"]}
        self.assertEqual(sites, {"0xaaa": (3, 384 * KiB), "0xbbb": (2, 512 * KiB)})
        self.assertEqual(lk["by_caller"][0]["site"], "0xbbb")  # biggest first

    def test_committed_pages_of_a_region_are_tracked_as_ranges(self):
        h = Host()
        h.reserve(0x100000, 1 * MiB)
        h.commit(0x100000, 512 * KiB)
        h.commit(0x140000, 512 * KiB)   # overlaps the first half by 256 KiB
        h.committed -= 256 * KiB        # the charge counts new pages only
        h.decommit(0x1b0000, 64 * KiB)
        _, s = replay(h)
        self.assertEqual(s["leaks"]["committed_bytes"], 768 * KiB - 64 * KiB)

    def test_region_state_statedump_finds_regions_made_before_the_session(self):
        h = Host()
        h.events = []  # the session started after create
        h.ev("region_state", base=0x100000, region_size=512 * KiB, committed_bytes=128 * KiB,
             protect=4, caller=0xccc)
        h.ev("region_state", base=0x200000, region_size=512 * KiB, committed_bytes=0,
             protect=4, caller=0xccc)
        h.reserved, h.committed = MiB, 128 * KiB
        h.release(0x200000, 512 * KiB, 0)
        h.reserve(0x300000, 64 * KiB, caller=0xddd)
        _, s = replay(h)
        lk = s["leaks"]
        self.assertEqual((lk["regions"], lk["reserved_bytes"], lk["committed_bytes"],
                          lk["from_statedump"]), (2, 576 * KiB, 128 * KiB, 1))
        self.assertEqual(s["untracked_ops"], 0)
        self.assertEqual(s["end_reserved_bytes"], 576 * KiB)

    def test_what_destroy_frees_is_a_leak_of_the_host(self):
        h = Host()
        h.reserve(0x100000, 64 * KiB)
        h.ev("manager_destroy", regions=1, reserved_bytes=64 * KiB, committed_bytes=0)
        _, s = replay(h)
        self.assertEqual(s["leaks"]["regions"], 1)
        self.assertEqual(s["leaks"]["reserved_bytes"], 64 * KiB)
        self.assertEqual(s["leaks"]["at_destroy"]["regions"], 1)
        self.assertEqual(s["end_reserved_bytes"], 0)

    def test_time_in_memory_states_survives_destroy(self):
        h = Host()
        h.ev("memory_state", old_state="high", state="low", committed_bytes=0, limit=1)
        h.ev("manager_destroy", regions=0, reserved_bytes=0, committed_bytes=0)
        _, s = replay(h)
        self.assertGreater(s["memory_state_ns"]["low"], 0)

    def test_temporary_regions(self):
        h = Host()
        h.reserve(0x100000, 64 * KiB)
        h.release(0x100000, 64 * KiB, 0, dt=5_000)            # 5 us: temporary
        h.reserve(0x200000, 128 * KiB)
        h.release(0x200000, 128 * KiB, 0, dt=2_000_000_000)   # 2 s: not
        _, s = replay(h, temporary_ns=1_000_000)
        t = s["temporary"]
        self.assertEqual((t["regions"], t["bytes"], t["of_released"]), (1, 64 * KiB, 2))

    def test_critical_decisions_and_memory_state_time(self):
        h = Host(limit=16 * MiB)
        h.ev("critical_decision", resource="commit", level="task", request_bytes=MiB,
             committed_bytes=0, level_ceiling=14 * MiB, limit=16 * MiB, decision="granted",
             waited_ns=0)
        h.ev("critical_decision", resource="commit", level="appdomain", request_bytes=MiB,
             committed_bytes=0, level_ceiling=15 * MiB, limit=16 * MiB,
             decision="granted_from_reserve", waited_ns=0)
        for _ in range(2):
            h.ev("critical_decision", resource="commit", level="process", request_bytes=MiB,
                 committed_bytes=0, level_ceiling=16 * MiB, limit=16 * MiB, decision="denied",
                 waited_ns=7)
        h.ev("memory_state", dt=1_000_000, old_state="high", state="neutral",
             committed_bytes=10 * MiB, limit=16 * MiB)
        h.ev("memory_state", dt=3_000_000, old_state="neutral", state="low",
             committed_bytes=15 * MiB, limit=16 * MiB)
        h.ev("memory_state", dt=2_000_000, old_state="low", state="neutral",
             committed_bytes=12 * MiB, limit=16 * MiB)
        h.op("protect", 0, 0, dt=4_000_000)
        _, s = replay(h)
        d = s["critical_decisions"]
        self.assertEqual((d["granted"], d["granted_from_reserve"], d["denied"]), (1, 1, 2))
        self.assertEqual(d["by_level"]["process"]["denied"], 2)
        self.assertEqual(d["waited_ns"], 14)
        st = s["memory_state_ns"]
        # high from create to the first change (4 events of 1 us, then 1 ms).
        self.assertEqual(st["high"], 4 * 1000 + 1_000_000)
        self.assertEqual(st["neutral"], 3_000_000 + 4_000_000)
        self.assertEqual(st["low"], 2_000_000)

    def test_processes_and_hosts_kept_apart_and_merged(self):
        a = Host(pid=1, host="alpha", procname="a", t0=1_000_000_000)
        b = Host(pid=2, host="beta", procname="b", manager=0x5000, t0=1_000_000_500)
        a.reserve(0x100000, 1 * MiB)
        b.reserve(0x100000, 2 * MiB)   # same address, another process
        a.commit(0x100000, 512 * KiB)
        b.commit(0x100000, 1 * MiB)
        b.release(0x100000, 2 * MiB, 1 * MiB)
        _, s = replay(a, b)
        self.assertEqual(s["hosts"], ["alpha", "beta"])
        procs = {p["procname"]: p for p in s["processes"]}
        self.assertEqual(procs["a"]["peak_reserved_bytes"], MiB)
        self.assertEqual(procs["b"]["peak_reserved_bytes"], 2 * MiB)
        self.assertEqual(procs["a"]["leaks"]["regions"], 1)
        self.assertEqual(procs["b"]["leaks"]["regions"], 0)
        self.assertEqual(s["ops"]["reserve"]["count"], 2)
        self.assertEqual(s["peak_reserved_bytes"], 3 * MiB)       # both at once
        self.assertEqual(s["peak_committed_bytes"], 1536 * KiB)
        self.assertEqual(s["leaks"]["regions"], 1)
        text = summary.format_text(s)
        self.assertIn("alpha/a[1]", text)
        self.assertIn("beta/b[2]", text)
        self.assertIn("\n  all ", text)

    def test_trust_banner_names_lower_bounds(self):
        h = Host()
        h.reserve(0x100000, 64 * KiB)
        h.seq += 5  # five events never arrived
        h.reserve(0x200000, 64 * KiB)
        evs = h.events + [{"name": "discarded", "kind": "events", "count": 7, "host": "h1",
                           "pid": 100, "procname": None, "ts": 0}]
        m = model.Model().feed_all(evs)
        s = summary.build(m)
        self.assertEqual((s["seq_gaps"], s["discarded_events"]), (5, 7))
        first = summary.format_text(s).splitlines()[2]
        self.assertTrue(first.startswith("WARNING: INCOMPLETE TRACE"), first)
        self.assertIn("Lower bounds", summary.format_text(s))
        self.assertFalse(s["trust"]["complete"])
        self.assertIn("7 events discarded by the tracer (ring buffer full)", s["trust"]["reasons"])
        self.assertIn("5 events missing by seq gaps", s["trust"]["reasons"])
        # T8: complete also means every manager was closed.
        h2 = Host()
        h2.reserve(0x100000, 64 * KiB)
        s2 = replay(h2)[1]
        self.assertEqual(s2["trust"]["complete"], False)
        self.assertIn("1 manager never destroyed", s2["trust"]["reasons"][0])
        h2.ev("manager_destroy", regions=1, reserved_bytes=64 * KiB, committed_bytes=0)
        s2 = replay(h2)[1]
        self.assertEqual(s2["trust"], {"complete": True, "reasons": [], "duplicates": []})
        self.assertIn("Trust: complete", summary.format_text(s2))

    def test_lost_releases_show_at_destroy(self):
        """T8: destroy counts its live regions; a release the trace lost makes
        the trace incomplete instead of a silent leak."""
        h = Host()
        h.reserve(0x100000, 64 * KiB)
        h.reserve(0x200000, 64 * KiB)
        h.release(0x200000, 64 * KiB, 0)
        h.ev("manager_destroy", regions=1, reserved_bytes=64 * KiB, committed_bytes=0)
        lost = [e for e in h.events if e["name"] != "release"]  # its release and its seq
        for e in lost:
            if e["seq"] > h.events[3]["seq"]:
                e["seq"] -= 1  # not a seq gap: only destroy's count can tell
        _, s = replay(type("H", (), {"events": lost})())
        self.assertEqual(s["seq_gaps"], 0)
        self.assertFalse(s["trust"]["complete"])
        self.assertTrue(any("destroy found 1 region live, the trace shows 2" in r
                            for r in s["trust"]["reasons"]), s["trust"])
        _, s = replay(h)
        self.assertTrue(s["trust"]["complete"], s["trust"])

    def test_crashed_process_holds_live_regions_not_leaks(self):
        """T8: a process killed by a signal: what it still held is live at the
        crash; what destroy freed before is still a leak; another process's
        leaks stay leaks."""
        h = Host(pid=7)
        h.reserve(0x100000, 64 * KiB)
        h.ev("manager_destroy", regions=1, reserved_bytes=64 * KiB, committed_bytes=0)
        h.manager = 0x6000
        h.ev("manager_create", commit_limit=0, address_space_limit=0, page_size=4096)
        h.reserve(0x200000, 1 * MiB)
        h.commit(0x200000, 256 * KiB)
        other = Host(pid=8)
        other.reserve(0x300000, 128 * KiB)
        evs = sorted(h.events + other.events, key=lambda e: e["ts"])
        m = model.Model().feed_all(evs)
        s = summary.build(m, command={"argv": ["prog"], "pid": 7, "host": "h1", "signal": 11,
                                      "signal_name": "SIGSEGV"})
        self.assertEqual(s["command"]["signal"], 11)
        p7 = [p for p in s["processes"] if p["pid"] == 7][0]
        self.assertEqual((p7["leaks"]["regions"], p7["leaks"]["reserved_bytes"]), (1, 64 * KiB))
        self.assertEqual(p7["live_at_crash"], dict(p7["live_at_crash"], regions=1,
                                                   reserved_bytes=MiB,
                                                   committed_bytes=256 * KiB))
        self.assertEqual((s["leaks"]["regions"], s["leaks"]["reserved_bytes"]),
                         (2, 64 * KiB + 128 * KiB))
        self.assertEqual(s["live_at_crash"]["regions"], 1)
        self.assertTrue(any("h1/prog[7]: 1 manager never destroyed: the process was killed by "
                            "SIGSEGV" in r for r in s["trust"]["reasons"]), s["trust"])
        text = summary.format_text(s)
        self.assertIn("Command: prog (pid 7): killed by signal 11 (SIGSEGV)", text)
        self.assertIn("Live at the crash", text)
        # Without the command's record the same trace has three leaks.
        s = summary.build(model.Model().feed_all(evs))
        self.assertEqual(s["leaks"]["regions"], 3)
        self.assertIsNone(s["command"])

    def test_untracked_operations_are_counted(self):
        h = Host()
        h.commit(0x100000, 64 * KiB)   # a region the trace never showed
        _, s = replay(h)
        self.assertEqual(s["untracked_ops"], 1)

    def test_contract_keys(self):
        h = Host()
        h.reserve(0x100000, 64 * KiB)
        _, s = replay(h)
        for k in ("events", "discarded_events", "peak_committed_bytes", "peak_reserved_bytes"):
            self.assertIn(k, s)
        for op in ("reserve", "commit", "decommit", "release", "protect", "reset"):
            o = s["ops"][op]
            self.assertEqual(set(o) >= {"count", "failed", "bytes", "latency_ns"}, True)
            self.assertEqual(set(o["latency_ns"]) >= {"p50", "p90", "p99", "max"}, True)
        self.assertEqual(set(s["failures"]) >= {"by_hresult", "by_level", "by_reason"}, True)
        self.assertEqual(set(s["critical_decisions"]) >= {"granted", "granted_from_reserve",
                                                         "denied"}, True)
        self.assertEqual(set(s["leaks"]) >= {"regions", "reserved_bytes", "committed_bytes"}, True)
        json.dumps(s)


def to_v2(events):
    """The same events in layout v2: no totals, no rounded results, a release
    names only its base (the reader has already turned start_ns into
    duration_ns)."""
    out = []
    for e in events:
        e = dict(e)
        if e["name"] in model.REGION_OPS:
            for k in ("committed_bytes", "reserved_bytes", "region_size"):
                e.pop(k, None)
            if e["name"] != "reserve":
                e.pop("base", None)
                e.pop("caller", None)
            if e["name"] == "release":
                e.pop("size", None)
        out.append(e)
    return out


def figures(s):
    keep = ("peak_committed_bytes", "peak_reserved_bytes", "end_committed_bytes",
            "end_reserved_bytes", "leaks", "ops", "failures", "temporary",
            "reserve_size_histogram", "untracked_ops")
    return {k: s[k] for k in keep}


class LayoutV2Test(unittest.TestCase):
    """Layout v2 events carry no totals: replay must find the same figures."""

    def workload(self):
        h = Host()
        h.reserve(0x10000, 1 * MiB)
        h.commit(0x10000, 256 * KiB)
        h.commit(0x50000, 128 * KiB)
        h.decommit(0x10000, 64 * KiB)
        h.op("protect", 0x50000, 64 * KiB)
        h.reserve(0x200000, 2 * MiB, caller=0x99)
        h.commit(0x200000, 2 * MiB)
        h.fail("commit", 0x10000, 4 * MiB, "E_OUTOFMEMORY", "limit_denied", level="appdomain")
        h.release(0x10000, 1 * MiB, 320 * KiB)
        h.reserve(0x400000, 64 * KiB)
        return h

    def test_replay_equals_the_totals_v1_carried(self):
        h = self.workload()
        _, s1 = replay(h)
        m2 = model.Model().feed_all(to_v2(h.events))
        s2 = summary.build(m2)
        self.assertEqual(figures(s2), figures(s1))
        self.assertEqual(s2["peak_committed_bytes"], 2 * MiB + 320 * KiB)
        self.assertEqual(s2["end_reserved_bytes"], 2 * MiB + 64 * KiB)
        self.assertEqual(s2["leaks"]["regions"], 2)

    def test_v2_rounds_arguments_as_the_library_does(self):
        h = Host()
        e = h.reserve(0x10000, 100000)
        e["size"] = 100000
        c = h.commit(0x10000, 4096 + 1)
        c["address"] = 0x10000 + 5
        m = model.Model().feed_all(to_v2(h.events))
        s = summary.build(m)
        self.assertEqual(s["end_reserved_bytes"], 102400)        # 25 pages
        self.assertEqual(s["end_committed_bytes"], 2 * 4096)     # [0x10005, 0x11006)
        # Committing pages already committed adds no charge.
        h.commit(0x10000, 4096)
        s = summary.build(model.Model().feed_all(to_v2(h.events)))
        self.assertEqual(s["end_committed_bytes"], 2 * 4096)

    def test_totals_event_resynchronises_after_lost_events(self):
        h = self.workload()
        evs = [e for e in to_v2(h.events)
               if not (e["name"] == "commit" and e["address"] == 0x200000)]
        evs.append(dict(evs[-1], name="totals", seq=evs[-1]["seq"] + 1, ts=evs[-1]["ts"] + 1,
                        reserved_bytes=2 * MiB + 64 * KiB, committed_bytes=2 * MiB))
        for k in ("address", "size", "base", "caller", "hr", "duration_ns", "level"):
            evs[-1].pop(k, None)
        s = summary.build(model.Model().feed_all(evs))
        self.assertEqual(s["end_committed_bytes"], 2 * MiB)
        self.assertEqual(s["end_reserved_bytes"], 2 * MiB + 64 * KiB)

    def test_totals_do_not_move_a_replay_seen_from_the_creation(self):
        # Another thread's reserve is charged when this totals event reads
        # the books, and its event comes after (the library reads them
        # racily): replay alone says what was reserved.
        h = Host()
        h.reserve(0x10000, 1 * MiB)
        h.ev("totals", reserved_bytes=1 * MiB + 64 * KiB, committed_bytes=0)
        h.reserve(0x200000, 64 * KiB)
        h.release(0x200000, 64 * KiB, 0)
        s = summary.build(model.Model().feed_all(to_v2(h.events)))
        self.assertEqual(s["peak_reserved_bytes"], 1 * MiB + 64 * KiB)
        self.assertEqual(s["end_reserved_bytes"], 1 * MiB)

    def test_a_manager_met_late_takes_its_first_totals_then_replays(self):
        h = Host()
        del h.events[:]  # the session began after the creation and 2 MiB of regions
        h.reserve(0x400000, 64 * KiB)
        h.ev("totals", reserved_bytes=2 * MiB + 64 * KiB, committed_bytes=0)
        h.reserve(0x500000, 64 * KiB)
        h.ev("totals", reserved_bytes=2 * MiB + 192 * KiB, committed_bytes=0)  # racy
        s = summary.build(model.Model().feed_all(to_v2(h.events)))
        self.assertEqual(s["end_reserved_bytes"], 2 * MiB + 128 * KiB)
        self.assertEqual(s["peak_reserved_bytes"], 2 * MiB + 128 * KiB)

    def test_totals_set_the_books_after_an_operation_on_an_unseen_region(self):
        h = Host()
        h.reserve(0x10000, 1 * MiB)
        h.commit(0x800000, 16 * KiB)  # in a region reserved untraced (A5)
        h.ev("totals", reserved_bytes=1 * MiB + 64 * KiB, committed_bytes=16 * KiB)
        s = summary.build(model.Model().feed_all(to_v2(h.events)))
        self.assertEqual(s["untracked_ops"], 1)
        self.assertEqual((s["end_reserved_bytes"], s["end_committed_bytes"]),
                         (1 * MiB + 64 * KiB, 16 * KiB))

    def test_manager_0_is_no_manager(self):
        # A call with a NULL manager and a refused hostmem_create.
        h = Host()
        h.manager = 0
        h.fail("reserve", 0, 64 * KiB, "E_POINTER", "null_pointer", level="task")
        h.ev("failure", op="create", hr="E_INVALIDARG", reason="bad_type", os_errno=0,
             address=0, size=0, level="none")
        h.manager = 0x5000
        h.ev("manager_destroy", regions=0, reserved_bytes=0, committed_bytes=0)
        s = summary.build(model.Model().feed_all(to_v2(h.events)))
        self.assertEqual(s["managers"], 1)
        self.assertEqual(s["trust"]["reasons"], [])
        self.assertEqual(s["failures"]["total"], 2)
        self.assertEqual((s["ops"]["reserve"]["count"], s["ops"]["reserve"]["failed"]), (1, 1))

    def test_failed_reserve_and_commit_gives_its_region_back(self):
        h = Host()
        h.reserve(0x10000, 1 * MiB)["alloc_type"] = 0x3000
        c = h.op("commit", 0x10000, 1 * MiB, hr="E_OUTOFMEMORY")
        c["alloc_type"] = 0x3000
        h.reserved -= 1 * MiB
        s = summary.build(model.Model().feed_all(to_v2(h.events)))
        self.assertEqual(s["end_reserved_bytes"], 0)
        self.assertEqual(s["leaks"]["regions"], 0)

    def test_export_rows_say_what_the_replay_knows(self):
        # A manager met late, regions made before the session: a whole-region
        # decommit and a release name the region's base page but not its size,
        # and the books stay unknown until the first totals event.
        from hostmem_analysis import export
        h = Host()
        del h.events[:]
        h.ev("decommit", address=0x300005, size=0, hr="S_OK")
        h.ev("release", address=0x300005, hr="S_OK")
        h.ev("totals", reserved_bytes=2 * MiB, committed_bytes=64 * KiB)
        h.ev("reserve", address=0, size=100000, base=0x400000, hr="S_OK", caller=0x1234)
        h.ev("commit", address=0x400005, size=4096, hr="S_OK")
        h.ev("commit", address=0x800000, size=4096, hr="E_OUTOFMEMORY")
        rows = [dict(zip(export.COLUMNS, r)) for r in export._rows(h.events)]
        got = [(r["event"], r["base"], r["region_size"], r["reserved_bytes"], r["committed_bytes"])
               for r in rows]
        self.assertEqual(got, [
            ("decommit", 0x300000, "", "", ""),
            ("release", 0x300000, "", "", ""),
            ("totals", "", "", 2 * MiB, 64 * KiB),
            ("reserve", 0x400000, 102400, 2 * MiB + 102400, 64 * KiB),
            ("commit", 0x400000, 2 * 4096, 2 * MiB + 102400, 64 * KiB + 2 * 4096),
            ("commit", "", "", 2 * MiB + 102400, 64 * KiB + 2 * 4096),
        ])



class BoundedTest(unittest.TestCase):
    """What the model keeps does not grow with events; histograms merge exactly."""

    def test_histogram_merge_equals_histogram_of_union(self):
        import random
        from hostmem_analysis.hist import Hist
        rnd = random.Random(7)
        vals = [rnd.randrange(0, 1 << rnd.randrange(1, 40)) for _ in range(20000)]
        whole = Hist()
        parts = [Hist() for _ in range(5)]
        for i, v in enumerate(vals):
            whole.add(v)
            parts[i % 5].add(v)
        merged = Hist()
        for p in reversed(parts):
            merged.merge(p)
        self.assertEqual(merged, whole)
        self.assertEqual(merged.max, max(vals))
        got = whole.percentiles([50, 99])
        s = sorted(vals)
        for p in (50, 99):
            exact = summary.percentile(s, p)
            self.assertLessEqual(got[p], exact)
            self.assertGreaterEqual(got[p], exact - exact // 512 - 1)
        self.assertLess(len(whole.counts), 20000)
        self.assertEqual(Hist.from_json(json.loads(json.dumps(whole.to_json()))), whole)

    def test_samples_and_temporaries_stay_bounded(self):
        h = Host()
        for i in range(3 * model.MAX_SAMPLES):
            base = 0x100000 + (i % 8) * 0x10000
            h.reserve(base, 64 * KiB, caller=0x1000 + i % 3)
            h.release(base, 64 * KiB, 0)
        m, s = replay(h)
        p = next(iter(m.processes.values()))
        self.assertLess(len(p.t_ts), model.MAX_SAMPLES)
        self.assertEqual(p.t_reserved[-1], 0)                   # the end stays exact
        self.assertEqual(max(p.t_reserved), 64 * KiB)           # so does the peak
        self.assertEqual(len(p.temporary), 3)                   # one entry per call site
        self.assertEqual(s["temporary"]["regions"], 3 * model.MAX_SAMPLES)


class FleetMergeTest(unittest.TestCase):
    """R7: traces analysed apart and merged give what one reader of all finds."""

    def hosts(self):
        a = Host(pid=1, host="a", manager=0x10)
        b = Host(pid=2, host="b", manager=0x20, t0=1_000_000_500)
        for i in range(300):
            h = a if i % 3 else b
            base = 0x100000 + (i % 7) * 0x100000
            h.reserve(base, (1 + i % 5) * 64 * KiB, caller=0x40 + i % 4)
            h.commit(base, 64 * KiB)
            if i % 11:
                h.release(base, (1 + i % 5) * 64 * KiB, 64 * KiB, dt=10_000 * (i % 13))
        a.fail("commit", 0x100000, 4 * MiB, "E_OUTOFMEMORY", "limit_denied")
        # Heaps in both: their leaks and counts merge too.
        for h, heap in ((a, 0x7000), (b, 0x8000)):
            h.ev("malloc_create", heap=heap, type=1)
            for i in range(20):
                h.ev("malloc_alloc", heap=heap, address=0x900000 + 64 * i, size=48, level="task",
                     caller=0x50 + i % 3, file="x.c" if i % 2 else "", line=i)
                if i % 4:
                    h.ev("malloc_free", heap=heap, address=0x900000 + 64 * i, size=48, caller=0x60)
        b.ev("manager_destroy", regions=0, reserved_bytes=0, committed_bytes=0)
        return a, b

    def test_merge_equals_one_reader(self):
        from hostmem_analysis import fleet
        a, b = self.hosts()
        _, serial = replay(a, b)
        parts = []
        for h in (a, b):
            m = model.Model(keep_all_samples=True).feed_all(sorted(h.events, key=lambda e: e["ts"]))
            parts.append(m.finish())
        # Any order of parts gives the same result.
        for order in (parts, parts[::-1]):
            merged = summary.build(fleet.merge(order))
            self.assertEqual(json.dumps(merged, sort_keys=True), json.dumps(serial, sort_keys=True))

    def test_parts_survive_pickling(self):
        import pickle
        from hostmem_analysis import fleet
        a, b = self.hosts()
        parts = [pickle.loads(pickle.dumps(
            model.Model(keep_all_samples=True).feed_all(h.events).finish())) for h in (a, b)]
        _, serial = replay(a, b)
        self.assertEqual(summary.build(fleet.merge(parts))["ops"], serial["ops"])
        self.assertEqual(summary.build(fleet.merge(parts))["heap"], serial["heap"])
        self.assertEqual(json.dumps(summary.build(fleet.merge(parts)), sort_keys=True),
                         json.dumps(serial, sort_keys=True))


class ReportTest(unittest.TestCase):
    """The SVG report on synthetic models: well-formed whatever the data."""

    SVG = "{http://www.w3.org/2000/svg}"

    def write(self, m, s):
        from xml.etree import ElementTree
        from hostmem_analysis import report
        out = tempfile.mkdtemp(prefix="hostmem-report-unit.")
        report.write(m, s, out)
        got = {}
        for name in sorted(os.listdir(out)):
            if name.endswith(".svg"):
                with open(os.path.join(out, name)) as f:
                    text = f.read()
                # no coordinate from a division by zero or a log of zero
                self.assertIsNone(re.search(r'[ "MLHVZ,-](nan|inf)', text), name)
                root = ElementTree.fromstring(text)
                got[name] = [t.text for t in root.iter(self.SVG + "text")]
        with open(os.path.join(out, "index.html")) as f:
            page = f.read()
        # R5: one self-contained page: each plot inline, nothing to fetch
        refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page)
        self.assertEqual([r for r in refs if not r.startswith("#")], [])
        self.assertEqual(page.count('<svg class="plot"'), len(got))
        for name in got:
            self.assertIn('<h2 id="%s">' % name[:-4], page)
        return got

    def test_many_processes_states_failures_and_one_latency(self):
        hosts = []
        for i in range(10):
            h = Host(pid=100 + i, t0=1_000_000_000 + i * 1000)
            h.reserve(0x10000, 1 * MiB)
            for k in range(50 * (i + 1)):
                h.commit(0x10000, 64 * KiB)
                h.decommit(0x10000, 64 * KiB)
            if i == 0:
                h.ev("memory_state", old_state="high", state="low", committed_bytes=0, limit=1)
                h.fail("commit", 0x10000, 4 * MiB, "E_OUTOFMEMORY", "limit_denied")
                h.fail("release", 0x20000, 0, "HOSTMEM_E_INVALID_ADDRESS", "not_region_base",
                       level="none")
            hosts.append(h)
        m, s = replay(*hosts)
        got = self.write(m, s)
        self.assertEqual(sorted(got), ["failures.svg", "latency.svg", "leaks.svg", "memory.svg",
                                       "sizes.svg"])
        self.assertIn("first 8 of 10 processes", got["memory.svg"])
        self.assertEqual(sum(1 for t in got["memory.svg"] if t and "peak reserved" in t), 8)
        self.assertIn("memory low", got["memory.svg"])
        self.assertIn("commit E_OUTOFMEMORY (1)", got["memory.svg"])
        # every call took 500 ns: one bucket, still an axis
        self.assertTrue(any(t and t.startswith("commit (") for t in got["latency.svg"]))

    def test_a_process_with_no_region_event(self):
        h = Host()
        m, s = replay(h)
        got = self.write(m, s)
        self.assertIn("memory.svg", got)
        self.assertNotIn("latency.svg", got)


class DiffTest(unittest.TestCase):
    def _summary(self, latency, failures):
        h = Host()
        h.reserve(0x100000, 64 * KiB)
        for _ in range(failures):
            h.fail("commit", 0x100000, MiB, "E_OUTOFMEMORY", "limit_denied")
        h.op("protect", 0x100000, 4096, duration=latency)
        return replay(h)[1]

    def test_regressions_flagged(self):
        base = self._summary(1000, 1)
        new = self._summary(5000, 3)
        text, n = diff.diff(base, new)
        self.assertGreaterEqual(n, 2)
        line = [l for l in text.splitlines() if l.startswith("failures.by_hresult.E_OUTOFMEMORY")]
        self.assertEqual(len(line), 1)
        self.assertIn("REGRESSION", line[0])
        self.assertIn("+200.0%", line[0])
        self.assertTrue(any("ops.protect.latency_ns.max" in l and "REGRESSION" in l
                            for l in text.splitlines()))

    def test_same_input_no_regression(self):
        s = self._summary(1000, 1)
        text, n = diff.diff(s, s)
        self.assertEqual(n, 0)
        self.assertIn("0 regressions", text)

    def test_cli_diff(self):
        tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "hostmem-analyze")
        with tempfile.TemporaryDirectory() as d:
            for name, lat in (("a.json", 1000), ("b.json", 9000)):
                with open(os.path.join(d, name), "w") as f:
                    json.dump(self._summary(lat, 1), f)
            r = subprocess.run([sys.executable, tool, "diff", "--fail-on-regression",
                                os.path.join(d, "a.json"), os.path.join(d, "b.json")],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("REGRESSION", r.stdout)
            r = subprocess.run([sys.executable, tool, "diff", os.path.join(d, "a.json"),
                                os.path.join(d, "missing.json")], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
