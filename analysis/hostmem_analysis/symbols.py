"""Turn return addresses into function and source line.

The trace says where each object of the process was loaded
(lttng_ust_statedump:bin_info, build_id, debug_link, or lttng_ust_dl:dlopen);
an address maps to an object and an offset in it, and the object's debug
information maps that to a function (DWARF subprograms, else the symbol
table) and a file:line (the DWARF line table), read in this process with
pyelftools (Debian python3-pyelftools): no helper process per address or per
object.  The debug information is looked for in the object itself, in
/usr/lib/debug/.build-id/ by build-id, and through its debug link.

Results are cached on disk by build-id ($XDG_CACHE_HOME/hostmem/symbols, else
~/.cache/hostmem/symbols; HOSTMEM_SYMBOL_CACHE=DIR elsewhere, =0 for none):
an object is read once per machine, and a trace still resolves after the
binary that made it was rebuilt or removed.  Without statedump events, or
when an object's debug information is nowhere to be found, a frame is the
address and its object and offset, `0xADDR (object+0xOFF)`: still a stable
key to group by.
"""

import bisect
import json
import os
import tempfile

try:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection
except ImportError:  # pragma: no cover - Debian's python3-pyelftools is a dependency
    ELFFile = None

_DEBUG_ROOT = "/usr/lib/debug"
_CACHE_VERSION = 1


def _cache_dir():
    env = os.environ.get("HOSTMEM_SYMBOL_CACHE")
    if env == "0":
        return None
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hostmem", "symbols")


class _Cache:
    """offset -> resolved text (or None: looked up, nothing found) per build-id, on disk."""

    def __init__(self):
        self.dir = _cache_dir()
        self.loaded = {}
        self.dirty = set()

    def get(self, build_id):
        d = self.loaded.get(build_id)
        if d is None:
            d = {}
            if self.dir and build_id:
                try:
                    with open(os.path.join(self.dir, build_id + ".json")) as f:
                        raw = json.load(f)
                    if raw.get("version") == _CACHE_VERSION:
                        d = {int(k, 16): v for k, v in raw.get("offsets", {}).items()}
                except (OSError, ValueError, AttributeError):
                    d = {}
            self.loaded[build_id] = d
        return d

    def put(self, build_id, off, text):
        self.get(build_id)[off] = text
        if build_id:
            self.dirty.add(build_id)

    def save(self):
        if not self.dir:
            return
        for bid in self.dirty:
            try:
                os.makedirs(self.dir, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
                with os.fdopen(fd, "w") as f:
                    json.dump({"version": _CACHE_VERSION,
                               "offsets": {"%x" % k: v for k, v in self.loaded[bid].items()}}, f)
                os.replace(tmp, os.path.join(self.dir, bid + ".json"))
            except OSError:
                pass  # a cache that cannot be written only costs time
        self.dirty = set()


class _Debug:
    """One object's debug information: functions and lines by address."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.elf = ELFFile(self.f)
        self.syms = None
        self.dwarf = self.elf.get_dwarf_info() if self.elf.has_dwarf_info() else None
        self.cu_ranges = None
        self.cus = {}  # CU offset -> (funcs [(lo, hi, name)], lines [(addr, file, line)], ends)

    def close(self):
        self.f.close()

    # -- symbol table ---------------------------------------------------------
    def _symbols(self):
        if self.syms is None:
            rows = []
            for name in (".symtab", ".dynsym"):
                sec = self.elf.get_section_by_name(name)
                if not isinstance(sec, SymbolTableSection):
                    continue
                for s in sec.iter_symbols():
                    if s["st_info"]["type"] == "STT_FUNC" and s["st_value"] and s.name:
                        rows.append((s["st_value"], s["st_value"] + max(1, s["st_size"]), s.name))
                if rows:
                    break
            rows.sort()
            self.syms = ([r[0] for r in rows], rows)
        return self.syms

    def symbol(self, pc):
        starts, rows = self._symbols()
        i = bisect.bisect_right(starts, pc) - 1
        if i >= 0 and pc < rows[i][1]:
            return rows[i][2]
        return None

    # -- DWARF ----------------------------------------------------------------
    def _cu_offset(self, pc):
        dw = self.dwarf
        try:
            ar = dw.get_aranges()
        except Exception:  # noqa: BLE001 - a malformed section: fall back to the CUs
            ar = None
        if ar is not None:
            off = ar.cu_offset_at_addr(pc)
            if off is not None:
                return off
        if self.cu_ranges is None:
            self.cu_ranges = []
            for cu in dw.iter_CUs():
                top = cu.get_top_DIE()
                lo, hi = _die_range(top)
                if lo is not None:
                    self.cu_ranges.append((lo, hi, cu.cu_offset))
        for lo, hi, off in self.cu_ranges:
            if lo <= pc < hi:
                return off
        return None

    def _cu_tables(self, off):
        t = self.cus.get(off)
        if t is not None:
            return t
        dw = self.dwarf
        cu = dw.get_CU_at(off)
        funcs = []
        for die in cu.iter_DIEs():
            if die.tag != "DW_TAG_subprogram":
                continue
            lo, hi = _die_range(die)
            if lo is None:
                continue
            name = _die_name(die)
            if name:
                funcs.append((lo, hi, name))
        funcs.sort()
        lines = []
        lp = dw.line_program_for_CU(cu)
        if lp is not None:
            files = lp["file_entry"]
            v5 = lp.header["version"] >= 5
            for e in lp.get_entries():
                st = e.state
                if st is None:
                    continue
                if st.end_sequence:
                    lines.append((st.address, None, 0))
                    continue
                idx = st.file if v5 else st.file - 1
                name = files[idx].name if 0 <= idx < len(files) else b"?"
                lines.append((st.address, name, st.line))
        lines.sort(key=lambda r: r[0])
        t = (funcs, lines, [r[0] for r in lines])
        self.cus[off] = t
        return t

    def lookup(self, pc):
        """(function or None, 'file:line' or None) for the instruction at pc."""
        func = where = None
        if self.dwarf is not None:
            try:
                off = self._cu_offset(pc)
                if off is not None:
                    funcs, lines, starts = self._cu_tables(off)
                    best = None
                    for lo, hi, name in funcs:
                        if lo <= pc < hi and (best is None or hi - lo < best[1] - best[0]):
                            best = (lo, hi, name)
                    if best:
                        func = best[2]
                    i = bisect.bisect_right(starts, pc) - 1
                    if i >= 0 and lines[i][1] is not None:
                        fname = lines[i][1]
                        if isinstance(fname, bytes):
                            fname = fname.decode(errors="replace")
                        where = "%s:%d" % (os.path.basename(fname), lines[i][2])
            except Exception:  # noqa: BLE001 - debug information we cannot read
                pass
        if func is None:
            func = self.symbol(pc)
        return func, where


def _die_range(die):
    a = die.attributes
    if "DW_AT_low_pc" not in a:
        return None, None
    lo = a["DW_AT_low_pc"].value
    hi = a.get("DW_AT_high_pc")
    if hi is None:
        return lo, lo + 1
    if hi.form.startswith("DW_FORM_data") or hi.form == "DW_FORM_implicit_const":
        return lo, lo + hi.value
    return lo, hi.value


def _die_name(die, depth=0):
    a = die.attributes
    if "DW_AT_name" in a:
        v = a["DW_AT_name"].value
        return v.decode(errors="replace") if isinstance(v, bytes) else v
    if depth < 4:
        for ref in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if ref in a:
                try:
                    return _die_name(die.get_DIE_from_attribute(ref), depth + 1)
                except Exception:  # noqa: BLE001
                    return None
    return None


class Symbolizer:
    def __init__(self, objects):
        """`objects`: baddr -> {baddr, memsz, path, is_pic, build_id, debug_link}."""
        self.objects = sorted((o for o in objects.values() if o.get("memsz")),
                              key=lambda o: o["baddr"])
        self.bases = [o["baddr"] for o in self.objects]
        self.found = {}   # addr -> (func, where) or None
        self.disk = _Cache()

    def locate(self, addr):
        """(object, offset) holding `addr`, or (None, addr)."""
        i = bisect.bisect_right(self.bases, addr) - 1
        if i >= 0:
            o = self.objects[i]
            if addr < o["baddr"] + o["memsz"]:
                return o, (addr - o["baddr"]) if o.get("is_pic", True) else addr
        return None, addr

    @staticmethod
    def _debug_files(o):
        """Files that may hold o's debug information, best first."""
        out = []
        bid = o.get("build_id")
        if bid and len(bid) > 2:
            out.append(os.path.join(_DEBUG_ROOT, ".build-id", bid[:2], bid[2:] + ".debug"))
        path = o.get("path")
        link = o.get("debug_link")
        if path and link:
            d = os.path.dirname(path)
            out += [os.path.join(d, link), os.path.join(d, ".debug", link),
                    _DEBUG_ROOT + os.path.join(d, link)]
        if path:
            out.append(path)
        return [f for f in out if os.path.isfile(f)]

    def _lookup(self, addrs):
        """Fill self.found for every address in `addrs`."""
        todo = {}
        for a in addrs:
            if a is None or a in self.found:
                continue
            o, off = self.locate(a)
            if o is None:
                self.found[a] = None
                continue
            # A return address: the call is the instruction before it.
            pc = max(0, off - 1)
            bid = o.get("build_id")
            cached = self.disk.get(bid) if bid else {}
            if pc in cached:
                v = cached[pc]
                self.found[a] = tuple(v) if v else None
                continue
            todo.setdefault(id(o), (o, []))[1].append((a, pc))
        for o, items in todo.values():
            self._read_object(o, items)
        self.disk.save()

    def _read_object(self, o, items):
        results = {}
        if ELFFile is not None:
            for path in self._debug_files(o):
                try:
                    dbg = _Debug(path)
                except Exception:  # noqa: BLE001 - not an ELF file, unreadable
                    continue
                try:
                    for a, pc in items:
                        if results.get(a, (None, None))[1] is not None:
                            continue
                        func, where = dbg.lookup(pc)
                        prev = results.get(a)
                        if func or where:
                            results[a] = (func or (prev[0] if prev else None), where)
                finally:
                    dbg.close()
                if all(results.get(a, (None, None))[1] for a, _ in items):
                    break
        bid = o.get("build_id")
        for a, pc in items:
            r = results.get(a)
            self.found[a] = r
            if bid:
                self.disk.put(bid, pc, list(r) if r else None)

    def _unresolved(self, a):
        o, off = self.locate(a)
        if o is None:
            return "0x%x" % a
        return "0x%x (%s+0x%x)" % (a, os.path.basename(o.get("path") or "?"), off)

    def frames(self, addrs):
        """{addr: "function (file:line)"} for stack frames; unresolved: "0xADDR (object+0xOFF)"."""
        addrs = [a for a in addrs if a is not None]
        self._lookup(addrs)
        out = {}
        for a in addrs:
            r = self.found.get(a)
            if not r:
                out[a] = self._unresolved(a)
                continue
            func, where = r
            o, off = self.locate(a)
            if where is None:
                where = "%s+0x%x" % (os.path.basename(o.get("path") or "?"), off)
            out[a] = "%s (%s)" % (func or "0x%x" % off, where)
        return out

    def resolve(self, addrs):
        """{addr: site string} for every address in `addrs` (call sites: one frame)."""
        addrs = [a for a in addrs if a is not None]
        self._lookup(addrs)
        out = {}
        for a in addrs:
            r = self.found.get(a)
            o, off = self.locate(a)
            if o is None:
                out[a] = "0x%x" % a
            elif not r:
                out[a] = "%s+0x%x" % (os.path.basename(o.get("path") or "?"), off)
            else:
                func, where = r
                if where is None:
                    where = "%s+0x%x" % (os.path.basename(o.get("path") or "?"), off)
                out[a] = "%s (%s)" % (func or "0x%x" % off, where)
        return out
