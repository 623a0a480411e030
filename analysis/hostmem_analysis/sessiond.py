"""Make sure an LTTng session daemon answers, starting one only when none runs.

`lttng list` can fail for a moment while a busy daemon is slow to answer; a
second daemon started then takes over the first one's sockets and leaves both
broken (the first one's consumer daemon dies).  So a daemon of this user that
exists is waited for, never doubled.  Standard library only (no bt2).
"""
import os
import shutil
import subprocess
import time

WAIT_S = 15.0


def answers():
    return subprocess.run(["lttng", "--no-sessiond", "list"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def _running():
    """True when a session daemon of this user exists, answering or not."""
    r = subprocess.run(["pgrep", "-u", str(os.getuid()), "-x", "lttng-sessiond"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def ensure_sessiond(wait_s=WAIT_S):
    """Return once a session daemon answers; raise RuntimeError with the reason otherwise."""
    if answers():
        return
    if shutil.which("lttng") is None:
        raise RuntimeError("lttng not found: install lttng-tools")
    if not _running():
        sessiond = shutil.which("lttng-sessiond")
        if sessiond is None:
            raise RuntimeError("lttng-sessiond not found: install lttng-tools")
        subprocess.run([sessiond, "--daemonize"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if answers():
            return
        time.sleep(0.1)
    raise RuntimeError("lttng-sessiond runs but did not answer within %.0f s" % wait_s)
