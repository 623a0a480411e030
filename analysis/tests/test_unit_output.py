"""Outputs written whole or not at all (output.py), and diff's check of
what it is given (diff.not_a_summary): no trace, no bt2 needed."""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hostmem_analysis import diff, output  # noqa: E402


class Atomic(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hostmem-output.")
        self.path = os.path.join(self.tmp, "out.json")
        with open(self.path, "w") as f:
            f.write("old\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def read(self):
        with open(self.path) as f:
            return f.read()

    def test_complete_write_replaces(self):
        with output.atomic(self.path) as f:
            f.write("new\n")
            self.assertEqual(self.read(), "old\n")  # not yet
        self.assertEqual(self.read(), "new\n")
        self.assertEqual(os.listdir(self.tmp), ["out.json"])

    def test_error_or_ctrl_c_keeps_the_old_file(self):
        for exc in (ValueError, KeyboardInterrupt):
            with self.assertRaises(exc):
                with output.atomic(self.path) as f:
                    f.write("half")
                    raise exc()
            self.assertEqual(self.read(), "old\n")
            self.assertEqual(os.listdir(self.tmp), ["out.json"])

    def test_permissions_follow_the_umask(self):
        old = os.umask(0o022)
        try:
            output.write_text(os.path.join(self.tmp, "new"), "x")
        finally:
            os.umask(old)
        self.assertEqual(os.stat(os.path.join(self.tmp, "new")).st_mode & 0o777, 0o644)

    def test_checks(self):
        trace = os.path.join(self.tmp, "trace")
        os.makedirs(os.path.join(trace, "ust"))
        for path in (trace, os.path.join(trace, "ust", "x.csv.gz")):
            with self.assertRaisesRegex(output.OutputError, "inside the input trace"):
                output.check_file(path, [trace])
        output.check_file(os.path.join(self.tmp, "x.csv.gz"), [trace])
        with self.assertRaisesRegex(output.OutputError, "is a directory"):
            output.check_file(self.tmp, [])
        with self.assertRaisesRegex(output.OutputError, "no such directory"):
            output.check_file(os.path.join(self.tmp, "missing", "x"), [])
        with self.assertRaisesRegex(output.OutputError, "not a directory"):
            output.check_dir(self.path, [])
        output.check_dir(os.path.join(self.tmp, "a", "b"), [trace])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "a")))  # made when written


class NotASummary(unittest.TestCase):
    def test(self):
        self.assertIsNone(diff.not_a_summary({"events": 0, "processes": []}))
        for doc in ([], {}, 3, "x", {"events": 1}, {"events": 1, "processes": [1]}):
            self.assertTrue(diff.not_a_summary(doc), doc)


if __name__ == "__main__":
    unittest.main()
