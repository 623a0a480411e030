"""Turn caller addresses into function and source line.

The trace says where each object of the process was loaded
(lttng_ust_statedump:bin_info, build_id, debug_link, or lttng_ust_dl:dlopen);
a caller address maps to an object and an offset in it, and addr2line
(binutils) maps that to a function and a line, reading the object's own
symbols, its debug link or /usr/lib/debug/.build-id.  Without statedump
events, or when the object is not on this machine, the site is the address
(or object+offset): still a stable key to group by.
"""

import bisect
import os
import shutil
import subprocess

_DEBUG_ROOT = "/usr/lib/debug"


class Symbolizer:
    def __init__(self, objects):
        """`objects`: baddr -> {baddr, memsz, path, is_pic, build_id, debug_link}."""
        self.objects = sorted((o for o in objects.values() if o.get("memsz")),
                              key=lambda o: o["baddr"])
        self.bases = [o["baddr"] for o in self.objects]
        self.cache = {}
        self.addr2line = shutil.which("addr2line")

    def locate(self, addr):
        """(object, offset) holding `addr`, or (None, addr)."""
        i = bisect.bisect_right(self.bases, addr) - 1
        if i >= 0:
            o = self.objects[i]
            if addr < o["baddr"] + o["memsz"]:
                return o, (addr - o["baddr"]) if o.get("is_pic", True) else addr
        return None, addr

    def _debug_file(self, o):
        bid = o.get("build_id")
        if bid and len(bid) > 2:
            p = os.path.join(_DEBUG_ROOT, ".build-id", bid[:2], bid[2:] + ".debug")
            if os.path.exists(p):
                return p
        path = o.get("path")
        if path and os.path.exists(path):
            return path
        return None

    def resolve(self, addrs):
        """{addr: site string} for every address in `addrs`."""
        todo = {}
        for a in addrs:
            if a in self.cache or a is None:
                continue
            o, off = self.locate(a)
            if o is None:
                self.cache[a] = "0x%x" % a
                continue
            self.cache[a] = "%s+0x%x" % (os.path.basename(o.get("path") or "?"), off)
            todo.setdefault(id(o), (o, []))[1].append((a, off))
        if self.addr2line:
            for o, items in todo.values():
                self._run(o, items)
        return {a: self.cache.get(a, "?") for a in addrs}

    def _run(self, o, items):
        f = self._debug_file(o)
        if f is None:
            return
        # A caller is a return address: the call is the instruction before.
        args = [self.addr2line, "-f", "-C", "-e", f] + ["0x%x" % max(0, off - 1) for _, off in items]
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return
        lines = out.splitlines()
        if len(lines) < 2 * len(items):
            return
        obj = os.path.basename(o.get("path") or f)
        for k, (a, off) in enumerate(items):
            func, line = lines[2 * k], lines[2 * k + 1]
            if func == "??" and line.startswith("??"):
                continue
            where = line.split(" (discriminator")[0]
            if where.startswith("??"):
                where = "%s+0x%x" % (obj, off)
            else:
                where = os.path.basename(where.split(":")[0]) + ":" + where.rsplit(":", 1)[-1]
            self.cache[a] = "%s (%s)" % (func if func != "??" else "0x%x" % off, where)
