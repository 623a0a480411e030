"""`cmake --install` puts hostmem-analyze in bin, and it runs from there."""

import json
import os
import subprocess
import tempfile
import unittest

BUILD = os.environ.get("HOSTMEM_BUILD_DIR")


@unittest.skipUnless(BUILD, "HOSTMEM_BUILD_DIR not set")
class InstallTest(unittest.TestCase):
    def test_installed_tools_run(self):
        with tempfile.TemporaryDirectory() as prefix:
            r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            tool = os.path.join(prefix, "bin", "hostmem-analyze")
            self.assertTrue(os.access(tool, os.X_OK))
            self.assertTrue(os.access(os.path.join(prefix, "bin", "hostmem-profile"), os.X_OK))
            doc = os.path.join(prefix, "s.json")
            with open(doc, "w") as f:
                json.dump({"events": 3, "ops": {"reserve": {"count": 3}}, "processes": []}, f)
            r = subprocess.run([tool, "diff", doc, doc], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("ops.reserve.count", r.stdout)
            self.assertIn("0 regressions", r.stdout)
            r = subprocess.run([tool, "summary", prefix], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("not an LTTng trace", r.stderr)
            # The package is byte-compiled where it is installed (the tools
            # ran with PYTHONDONTWRITEBYTECODE=1: the caches are install's).
            pkg = os.path.join(prefix, "share", "hostmem", "analysis")
            src = os.path.join(pkg, "hostmem_analysis")
            cache = os.path.join(src, "__pycache__")
            modules = sorted(f[:-3] for f in os.listdir(src) if f.endswith(".py"))
            compiled = sorted({f.split(".")[0] for f in os.listdir(cache)}) \
                if os.path.isdir(cache) else []
            self.assertEqual(compiled, modules)
            # The C engine is installed beside the package, and found there.
            env = {k: v for k, v in os.environ.items() if k != "HOSTMEM_ENGINE_LIB"}
            r = subprocess.run(["/usr/bin/python3", "-c",
                                "import sys; sys.path.insert(0, %r)\n"
                                "from hostmem_analysis import engine\n"
                                "print(engine.library_path()); engine._load()" % pkg],
                               capture_output=True, text=True, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.strip().startswith(pkg), r.stdout)


if __name__ == "__main__":
    unittest.main()
