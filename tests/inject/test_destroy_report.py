#!/usr/bin/python3
"""manager_destroy reports what the kernel would not take back.

Runs destroy_host (see destroy_host.c) under libhostmem-inject.so inside a
real LTTng session and checks the manager_destroy event's unreturned_mappings
and unreturned_bytes against what the host says it left behind.  Usage:
test_destroy_report.py HOST INJECTOR
"""
import os
import subprocess
import sys
import tempfile
import uuid
import shutil

import bt2

TIMEOUT = 120


def lttng(*args):
    subprocess.run(["lttng", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=TIMEOUT)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "analysis"))
from hostmem_analysis.sessiond import ensure_sessiond  # noqa: E402  (start a daemon only when none runs)


def main():
    host, injector = sys.argv[1], sys.argv[2]
    ensure_sessiond()
    name = "hostmem-destroy-" + uuid.uuid4().hex[:12]
    tmp = tempfile.mkdtemp(prefix="hostmem-destroy-")
    path = os.path.join(tmp, "trace")
    try:
        lttng("create", name, "--output", path)
        lttng("enable-event", "-u", "-s", name, "hostmem:manager_destroy")
        lttng("add-context", "-u", "-s", name, "-t", "vpid")
        lttng("start", name)
        env = dict(os.environ, LD_PRELOAD=injector)
        env.pop("HOSTMEM_LTTNG", None)
        proc = subprocess.Popen([host], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        out, err = proc.communicate(timeout=TIMEOUT)
        lttng("stop", name)
        lttng("destroy", name)
        if proc.returncode != 0:
            print(f"{host}: exit status {proc.returncode}: {err.strip()}")
            return 1
        words = out.split()
        want_mappings, want_bytes = int(words[1]), int(words[2])
        found = []
        for msg in bt2.TraceCollectionMessageIterator(path):
            if type(msg) is bt2._EventMessageConst and msg.event.name == "hostmem:manager_destroy":
                ev = msg.event
                if int(ev.common_context_field["vpid"]) == proc.pid:
                    found.append(ev)
        if len(found) != 1:
            print(f"{path}: {len(found)} manager_destroy events, want 1")
            return 1
        ev = found[0]
        got = (int(ev.payload_field["unreturned_mappings"]), int(ev.payload_field["unreturned_bytes"]))
        if got != (want_mappings, want_bytes):
            print(f"manager_destroy: unreturned_mappings {got[0]} unreturned_bytes {got[1]}, "
                  f"want {want_mappings} {want_bytes}")
            return 1
        if int(ev.payload_field["regions"]) != 2:
            print(f"manager_destroy: regions {int(ev.payload_field['regions'])}, want 2 (the host's leaks)")
            return 1
        print(f"manager_destroy reports {got[0]} mappings, {got[1]} bytes not returned")
        return 0
    finally:
        subprocess.run(["lttng", "destroy", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
