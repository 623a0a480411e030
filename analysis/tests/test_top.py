#!/usr/bin/python3
"""R6: `hostmem-analyze top` follows a live session of a running host.

A relay daemon of the test's own (127.0.0.1, free ports), a live session
recording only the scripted host in its `hold` mode (known bytes, a known
denial), and `top` reading it, attached before the host works (a viewer that
attaches later sees only what comes after): the plain-lines output shows the
host's figures and call sites, Ctrl-C ends it with status 0; on a terminal
(a pty) it draws on the alternate screen and gives the terminal back.  Needs what test_e2e.py needs.
"""

import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402

TOOL = e2e.TOOL
WAIT_S = 30  # for the live data to show; it takes a few seconds


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Top(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.ensure_sessiond()
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-top.")
        ctrl, data, live = free_ports(3)
        cls.relayd = subprocess.Popen(
            ["lttng-relayd", "-C", "tcp://127.0.0.1:%d" % ctrl, "-D", "tcp://127.0.0.1:%d" % data,
             "-L", "tcp://127.0.0.1:%d" % live, "-o", os.path.join(cls.tmp, "relayd")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.name = "hostmem-top-%d" % os.getpid()
        cls.host = None
        try:
            deadline = time.monotonic() + 10
            while True:  # the relay daemon listens when a connection is taken
                try:
                    socket.create_connection(("127.0.0.1", live), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or cls.relayd.poll() is not None:
                        raise
                    time.sleep(0.1)
            cls.host = e2e.Host("hold")
            e2e.lttng("create", cls.name, "--live=200000", "--ctrl-url=tcp://127.0.0.1:%d" % ctrl,
                      "--data-url=tcp://127.0.0.1:%d" % data)
            s = cls.name
            e2e.lttng("enable-channel", "-u", "ch", "-s", s, "--subbuf-size=1M", "--num-subbuf=4")
            for ev in ("hostmem:*", "lttng_ust_statedump:*"):
                e2e.lttng("enable-event", "-u", ev, "-s", s, "-c", "ch")
            e2e.lttng("add-context", "-u", "-s", s, "-c", "ch", "-t", "vpid", "-t", "vtid",
                      "-t", "procname")
            e2e.lttng("untrack", "-u", "-s", s, "--vpid", "--all")
            e2e.lttng("track", "-u", "-s", s, "--vpid=%d" % cls.host.pid)
            e2e.lttng("start", s)
        except BaseException:
            cls.tearDownClass()
            raise
        cls.url = "net://127.0.0.1:%d/host/%s/%s" % (live, socket.gethostname(), cls.name)

    @classmethod
    def tearDownClass(cls):
        if cls.host is not None:
            cls.host.kill()
        e2e.lttng("destroy", cls.name, check=False)
        cls.relayd.kill()  # ours, by its pid
        cls.relayd.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def expected(self, text):
        """The host's line and its call sites are in `text`."""
        want = "hostmem_scripte[%d]" % self.host.pid
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if want in line and "1.0 MiB" in line and "16.1 MiB" in line:
                return line, lines[i + 1:i + 3]
        return None

    def test_1_follows_the_host_in_plain_lines_until_ctrl_c(self):
        p = subprocess.Popen([sys.executable, TOOL, "top", self.url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        # Attached (its first snapshot is out): now the host works.
        first = p.stdout.readline()
        self.assertTrue(first.startswith("hostmem top"), first)
        self.host.go()
        self.assertEqual(self.host.p.stdout.readline().strip(), "held")
        got, text = None, first
        deadline = time.monotonic() + WAIT_S
        try:
            while got is None and time.monotonic() < deadline:
                ready, _, _ = select.select([p.stdout], [], [], 1.0)
                if ready:
                    line = p.stdout.readline()
                    if not line:
                        break
                    text += line
                    if line == "\n":
                        got = self.expected(text.rsplit("hostmem top", 1)[-1])
        finally:
            p.send_signal(signal.SIGINT)
            try:
                rest, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                rest, err = p.communicate()
                self.fail("top did not end on SIGINT")
        self.assertIsNotNone(got, "no snapshot showed the host: %s%s\n%s" % (text, rest, err))
        line, sites = got
        self.assertEqual(p.returncode, 0, err)
        self.assertNotIn("Traceback", err)
        # committed, reserved, memory state, managers, denials task/appdomain/process, failures
        fields = line.split()
        self.assertEqual(fields[1:9], ["1.0", "MiB", "16.1", "MiB", fields[5], "1", "1/0/0", "1"],
                         line)
        self.assertIn(fields[5], ("high", "neutral", "low"))
        self.assertIn("reserve (scripted_host.c:", sites[0])
        self.assertIn("1.0 MiB committed", sites[0])
        self.assertIn("leak_site_a (scripted_host.c:", sites[1])
        self.assertTrue(text.startswith("hostmem top"), text[:200])

    def test_2_terminal_restored_after_ctrl_c(self):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.executable, [sys.executable, TOOL, "top", "--interval", "0.5", self.url])
        out = b""
        try:
            deadline = time.monotonic() + WAIT_S
            while out.count(b"hostmem top") < 2 and time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 1.0)
                if ready:
                    try:
                        out += os.read(fd, 65536)
                    except OSError:
                        break
            os.kill(pid, signal.SIGINT)
            end = time.monotonic() + 10
            while time.monotonic() < end:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(fd)
        self.assertGreaterEqual(out.count(b"hostmem top"), 2, out)
        self.assertTrue(out.startswith(b"\x1b[?1049h\x1b[?25l"), out[:40])
        self.assertTrue(out.endswith(b"\x1b[?25h\x1b[?1049l"), out[-40:])
        self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status)

    def test_3_once_and_bad_url(self):
        r = subprocess.run([sys.executable, TOOL, "top", "--once", self.url], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count("hostmem top"), 1, r.stdout)
        r = subprocess.run([sys.executable, TOOL, "top", "http://example/x"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not an LTTng live session URL", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        # No relay daemon there: said in one line, from where it began.
        (closed,) = free_ports(1)
        r = subprocess.run([sys.executable, TOOL, "top", "--once",
                            "net://127.0.0.1:%d/host/h/s" % closed], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("cannot follow the session: Connection failed", r.stderr)


if __name__ == "__main__":
    if not e2e.HOST:
        sys.stderr.write("HOSTMEM_SCRIPTED_HOST is not set\n")
        sys.exit(2)
    unittest.main()
