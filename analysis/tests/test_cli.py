#!/usr/bin/python3
"""The tools' edges: bad options, outputs that cannot be written, damaged
side files, Ctrl-C.  Each says so in one line with a documented exit status
(never a traceback), leaves no half-written output and never touches its
input.

Needs what test_e2e.py needs (LTTng, HOSTMEM_SCRIPTED_HOST).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402

PROFILE = os.path.join(e2e.ANALYSIS, "hostmem-profile")
HOST = e2e.HOST


def one_line(test, r, status, *words):
    """`r` exited with `status` and said one line on stderr holding `words`."""
    test.assertEqual(r.returncode, status, r.stderr)
    lines = r.stderr.strip().splitlines()
    test.assertEqual(len(lines), 1, r.stderr)
    test.assertNotIn("Traceback", r.stderr)
    for w in words:
        test.assertIn(w, lines[0])
    return lines[0]


def files_of(d):
    return sorted(os.listdir(d))


def tree_digest(path):
    import hashlib
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            h.update(p.encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


class Analyze(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.ensure_sessiond()
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-cli.")
        cls.trace = os.path.join(cls.tmp, "trace")
        e2e.record(cls.trace, ("run", os.path.join(cls.tmp, "run.json")))
        # only the statedump of a program that does not use hostmem
        cls.other = os.path.join(cls.tmp, "other")
        e2e.record(cls.other, ("churn", "1"), events=("lttng_ust_statedump:*",))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def out_dir(self, name):
        d = os.path.join(self.tmp, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def test_bad_option_values(self):
        for opt in (["--temporary-ms", "nan"], ["--temporary-ms", "inf"],
                    ["--temporary-ms", "-1"], ["-j", "0"], ["-j", "-1"], ["--jobs", "x"]):
            r = e2e.analyze("summary", self.trace, *opt)
            one_line(self, r, 2, opt[0].lstrip("-").split("-")[0])
            self.assertEqual(r.stdout, "")

    def test_scheduler_that_cannot_be_reached(self):
        for address in ("garbage://", "tcp://127.0.0.1:1"):
            t0 = time.monotonic()
            r = e2e.analyze("summary", "--scheduler", address, self.trace)
            one_line(self, r, 2, "--scheduler", address)
            self.assertLess(time.monotonic() - t0, 25)

    def test_outputs_that_cannot_be_written(self):
        d = self.out_dir("unwritable")
        missing = os.path.join(d, "missing", "x")
        afile = os.path.join(d, "afile")
        with open(afile, "w") as f:
            f.write("mine\n")
        for args, where in ((["export", "-o", missing + ".csv.gz"], missing),
                            (["export", "--perfetto", "-o", missing + ".json"], missing),
                            (["export", "-o", d], d),
                            (["export", "--perfetto", "-o", d], d),
                            (["report", "-o", afile], afile)):
            r = e2e.analyze(args[0], self.trace, *args[1:])
            one_line(self, r, 2, where)
        self.assertEqual(files_of(d), ["afile"])
        with open(afile) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_output_inside_the_input_is_refused(self):
        copy = e2e.fresh_copy(self.trace, self.tmp, "inside")
        before = tree_digest(copy)
        stream = e2e.streams_of(copy)[0]
        for args in (["export", copy, "-o", stream],
                     ["export", "--perfetto", copy, "-o", os.path.join(copy, "x.json")],
                     ["export", copy, "-o", copy],
                     ["report", copy, "-o", os.path.join(copy, "report")]):
            r = e2e.analyze(*args)
            one_line(self, r, 2, "inside the input trace")
        self.assertEqual(tree_digest(copy), before)

    def test_stdout_write_error(self):
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, e2e.TOOL, "summary", self.trace], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=300)
        one_line(self, r, 2, "standard output")

    def test_diff_of_what_is_not_a_summary(self):
        d = self.out_dir("diff")
        good = os.path.join(d, "good.json")
        r = e2e.analyze("summary", "--json", self.trace)
        with open(good, "w") as f:
            f.write(r.stdout)
        for i, text in enumerate(("[]", "{}", '{"events": 1, "processes": [1]}')):
            bad = os.path.join(d, "bad%d.json" % i)
            with open(bad, "w") as f:
                f.write(text)
            one_line(self, e2e.analyze("diff", good, bad), 2, bad, "not a summary")
            one_line(self, e2e.analyze("diff", bad, good), 2, bad, "not a summary")
        self.assertEqual(e2e.analyze("diff", good, good).returncode, 0)

    def test_damaged_command_record(self):
        copy = e2e.fresh_copy(self.trace, self.tmp, "badcmd")
        record = os.path.join(copy, "hostmem-command.json")
        for text in ('{"pid": "abc", "signal": "x"}', '{"argv": "ls", "exit_status": 0}',
                     "[1, 2]", "{not json"):
            with open(record, "w") as f:
                f.write(text)
            r = e2e.analyze("summary", "--json", copy)
            one_line(self, r, 3, record, "damaged command record")
            s = json.loads(r.stdout)
            self.assertIsNone(s["command"])
            self.assertEqual(s["commands"], [])

    def test_export_of_a_trace_without_hostmem_events(self):
        d = self.out_dir("noevents")
        for args in (["-o", os.path.join(d, "x.csv.gz")],
                     ["--perfetto", "-o", os.path.join(d, "x.json")]):
            r = e2e.analyze("export", self.other, *args)
            one_line(self, r, 2, "no hostmem events")
            self.assertEqual(e2e.analyze("summary", self.other).returncode, 2)
        self.assertEqual(files_of(d), [])

    def test_failed_export_keeps_the_existing_output(self):
        d = self.out_dir("keep")
        junk = os.path.join(self.tmp, "junk")
        os.makedirs(junk, exist_ok=True)
        with open(os.path.join(junk, "metadata"), "w") as f:
            f.write("this is not a trace\n")
        with open(os.path.join(junk, "ch_0"), "wb") as f:
            f.write(b"\0" * 100)
        for name, extra in (("keep.json", ["--perfetto"]), ("keep.csv.gz", [])):
            keep = os.path.join(d, name)
            with open(keep, "w") as f:
                f.write("mine\n")
            for bad in (junk, self.other):
                r = e2e.analyze("export", *extra, bad, "-o", keep)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                with open(keep) as f:
                    self.assertEqual(f.read(), "mine\n")
        self.assertEqual(files_of(d), ["keep.csv.gz", "keep.json"])

    def interrupt(self, args, d, when_file_appears):
        """Start hostmem-analyze ARGS, Ctrl-C it (SIGINT) once its output's
        temporary file is in `d` (or after a second when not
        `when_file_appears`); returns the completed run."""
        p = subprocess.Popen([sys.executable, e2e.TOOL] + args, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None:
            if not when_file_appears or os.listdir(d):
                break
            time.sleep(0.01)
        if not when_file_appears:
            time.sleep(1)
        self.assertIsNone(p.poll(), "it ended before it could be interrupted")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        return p.returncode, out, err

    def test_ctrl_c(self):
        big = os.path.join(self.tmp, "big")
        if not os.path.exists(big):
            e2e.record(big, ("churn", "20000"))
        d = self.out_dir("ctrl-c")
        for args in (["export", "--engine", "python", big, "-o", os.path.join(d, "x.csv.gz")],
                     ["export", "--perfetto", big, "-o", os.path.join(d, "x.json")]):
            rc, out, err = self.interrupt(args, d, True)
            self.assertEqual((rc, err), (130, ""))
            self.assertEqual(files_of(d), [])
        rc, out, err = self.interrupt(["summary", "--engine", "python", big], d, False)
        self.assertEqual((rc, out, err), (130, "", ""))


class Profile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.ensure_sessiond()
        cls.tmp = tempfile.mkdtemp(prefix="hostmem-cli-profile.")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def profile(self, *args, env=None, stdin="go\n"):
        return subprocess.run([sys.executable, PROFILE] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=300, env=env)

    def test_output_that_cannot_be_made(self):
        afile = os.path.join(self.tmp, "afile")
        with open(afile, "w") as f:
            f.write("mine\n")
        for out in (afile, "/proc/hostmem-cli-test", "/proc/hostmem-cli-test/x"):
            one_line(self, self.profile("-o", out, "--", "true"), 2, out)
        with open(afile) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_signal_during_setup_destroys_the_session(self):
        """A signal between the session's creation and the command's start:
        the session is destroyed, the command never runs, 128+N."""
        slow = os.path.join(self.tmp, "slowbin")
        os.makedirs(slow, exist_ok=True)
        lttng = os.path.join(slow, "lttng")
        with open(lttng, "w") as f:
            f.write('#!/bin/sh\ncase "$2" in start) sleep 5;; esac\nexec %s "$@"\n'
                    % shutil.which("lttng"))
        os.chmod(lttng, 0o755)
        env = dict(os.environ, PATH=slow + os.pathsep + os.environ["PATH"])
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            out = os.path.join(self.tmp, "sig%d" % sig)
            marker = os.path.join(self.tmp, "ran%d" % sig)
            p = subprocess.Popen([sys.executable, PROFILE, "-o", out, "--", "touch", marker],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
            time.sleep(2)  # in `lttng start`
            p.send_signal(sig)
            _, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 128 + sig, err)
            self.assertNotIn("Traceback", err)
            self.assertIn("nothing recorded", err)
            time.sleep(0.5)
            self.assertFalse(os.path.exists(marker), "the command ran unrecorded")
            sessions = e2e.lttng("list").stdout
            self.assertNotIn("hostmem-profile-%d-" % p.pid, sessions)

    def test_command_whose_child_uses_hostmem(self):
        out = os.path.join(self.tmp, "child")
        r = self.profile("-o", out, "--", "/bin/sh", "-c", "%s churn 10 | cat" % HOST)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("recorded no hostmem events", r.stderr)
        self.assertIn("--all-processes", r.stderr)

    def test_each_trace_has_its_own_command(self):
        """A directory of two profiled runs: the crashed one's regions are
        live at its crash whichever trace comes first."""
        parent = os.path.join(self.tmp, "runs")
        r = self.profile("-o", os.path.join(parent, "a-exits"), "--no-report", "--", HOST,
                         "churn", "10")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.profile("-o", os.path.join(parent, "b-crashes"), "--no-report", "--", HOST,
                         "crash", "11")
        self.assertEqual(r.returncode, 128 + 11, r.stderr)
        alone = json.loads(e2e.analyze("summary", "--json",
                                       os.path.join(parent, "b-crashes")).stdout)
        self.assertGreater(alone["live_at_crash"]["regions"], 0)
        r = e2e.analyze("summary", "--json", parent)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(len(s["commands"]), 2)
        self.assertEqual(s["live_at_crash"]["regions"], alone["live_at_crash"]["regions"])
        self.assertEqual(s["leaks"]["regions"], alone["leaks"]["regions"])
        crashed = [p for p in s["processes"] if p["pid"] == alone["command"]["pid"]]
        self.assertEqual(crashed[0]["live_at_crash"]["regions"],
                         alone["live_at_crash"]["regions"])
        text = e2e.analyze("summary", parent).stdout
        self.assertEqual(text.count("Command: "), 2)


if __name__ == "__main__":
    unittest.main()
