"""The error type imports without bt2 (errors.py), and reader re-exports it."""

import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Import the error type where bt2 cannot be imported, and prove it could not.
PROBE = """
import sys
sys.modules.setdefault("bt2", None)  # a no-op where bt2 is missing anyway
try:
    import bt2  # noqa: F401
    sys.exit("bt2 importable: the probe proves nothing")
except ImportError:
    pass
from hostmem_analysis.errors import TraceError
assert issubclass(TraceError, Exception)
assert "hostmem_analysis.reader" not in sys.modules
print("ok")
"""


def probe(python):
    return subprocess.run([python, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


class ErrorsWithoutBt2(unittest.TestCase):
    def test_blocked_bt2(self):
        r = probe(sys.executable)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "ok")

    def test_python_without_bt2(self):
        # The first python3 on PATH, when it is one without bt2 (as on the
        # development machine); skipped where every python3 has it.
        other = shutil.which("python3")
        if not other:
            self.skipTest("no python3 on PATH")
        has = subprocess.run([other, "-c", "import bt2"], capture_output=True).returncode == 0
        if has:
            self.skipTest("%s has bt2" % other)
        r = probe(other)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_reader_reexports(self):
        try:
            from hostmem_analysis import errors, reader
        except ImportError:
            self.skipTest("no bt2 in this python")
        self.assertIs(reader.TraceError, errors.TraceError)


if __name__ == "__main__":
    unittest.main()
