"""Read LTTng traces into plain event dicts: the only module that imports bt2.

Each event becomes a dict: ``name`` (``reserve`` for ``hostmem:reserve``;
other providers keep their prefix, e.g. ``lttng_ust_statedump:bin_info``),
``ts`` (ns from the clock origin: wall time for LTTng), ``host`` (the trace
environment's hostname), ``pid`` and ``procname`` (the vpid / procname
contexts, else the per-process buffer's environment), and the payload fields
asked for, enums by label, integers as int, byte sequences as hex strings.
Discarded events and packets arrive as ``{"name": "discarded", "kind":
"events" | "packets", "count": n, "host", "pid"}``.

Speed: Python's cost is per object.  The graph (one src.ctf.fs per trace,
a muxer for time order) feeds a sink of ours that takes messages in batches
as raw pointers and reads only the fields the model needs, by index,
through bt2's native layer; the public wrapper objects are built once per
event class and per stream, never per event.
"""

import os
import re

import bt2
from bt2 import native_bt as _nbt
from bt2 import _native_bt as _raw  # the SWIG builtins, without native_bt.py's Python shims
from bt2 import message as _bt2_message

from . import ctfcheck, reorder
from .errors import TraceError  # noqa: F401 (re-exported: reader.TraceError)


def find_traces(path):
    """Every CTF trace directory (one holding `metadata`) under `path`."""
    if not os.path.exists(path):
        raise TraceError("%s: no such file or directory" % path)
    if not os.path.isdir(path):
        # Only a trace's own metadata file stands for its directory: any
        # other file is no trace, whatever lies beside it.
        if os.path.basename(path) != "metadata":
            raise TraceError("%s: not an LTTng trace" % path)
        return [os.path.dirname(path) or "."]
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        if "metadata" in files:
            out.append(root)
            dirs[:] = []
    if not out:
        raise TraceError("%s: not an LTTng trace (no CTF 'metadata' file under it)" % path)
    return out


# -- per-class plans ---------------------------------------------------------

_U = 0       # unsigned integer
_S = 1       # signed integer
_STR = 2     # string
_ENUM_U = 3  # unsigned enum -> label
_ENUM_S = 4  # signed enum -> label
_BYTES = 5   # array of bytes -> hex string
_INTS = 6    # array of wider integers (stack frames) -> tuple of int

# (getattr: a double-underscore name inside a class body would be mangled)
_STATUS_OK = getattr(_nbt, "__BT_FUNC_STATUS_OK")
_STATUS_END = getattr(_nbt, "__BT_FUNC_STATUS_END")
_STATUS_AGAIN = getattr(_nbt, "__BT_FUNC_STATUS_AGAIN")
_get_u = _raw.field_integer_unsigned_get_value
_get_s = _raw.field_integer_signed_get_value
_get_str_raw = _raw.field_string_get_value
_get_str_len = _raw.field_string_get_length


def _get_str(f):
    # An empty string field can hand back the text of an earlier, longer
    # value (the decoder reuses the field and its buffer): the length, in
    # bytes, is the truth.  Seen as `file` of a non-debug malloc_alloc reading
    # "workload.c" after a debug allocation from that file.
    n = _get_str_len(f)
    if n == 0:
        return ""
    v = _get_str_raw(f)
    return v if len(v) == n else v.encode()[:n].decode(errors="replace")


_member = _raw.field_structure_borrow_member_field_by_index_const


def _enum_labels(fc):
    labels = {}
    for label, mapping in fc.items():
        for r in mapping.ranges:
            if r.upper - r.lower < 4096:
                for v in range(r.lower, r.upper + 1):
                    labels.setdefault(v, label)
    return labels


def _kind(fc):
    if isinstance(fc, bt2._UnsignedEnumerationFieldClassConst):
        return _ENUM_U, _enum_labels(fc)
    if isinstance(fc, bt2._SignedEnumerationFieldClassConst):
        return _ENUM_S, _enum_labels(fc)
    if isinstance(fc, bt2._UnsignedIntegerFieldClassConst):
        return _U, None
    if isinstance(fc, bt2._SignedIntegerFieldClassConst):
        return _S, None
    if isinstance(fc, bt2._StringFieldClassConst):
        return _STR, None
    if isinstance(fc, bt2._ArrayFieldClassConst):
        el = fc.element_field_class
        if isinstance(el, bt2._IntegerFieldClassConst) and el.field_value_range > 8:
            return _INTS, None
        return _BYTES, None
    return None, None


def _getter(kind, labels):
    """A function reading one member field's value (C functions when possible)."""
    if kind == _U:
        return _get_u
    if kind == _S:
        return _get_s
    if kind == _STR:
        return _get_str
    if kind == _ENUM_S:
        return lambda f: labels.get(_get_s(f)) or str(_get_s(f))
    if kind == _ENUM_U:
        return lambda f: labels.get(_get_u(f)) or str(_get_u(f))

    if kind == _INTS:
        def read_ints(f):
            n = _nbt.field_array_get_length(f)
            return tuple(_get_u(_nbt.field_array_borrow_element_field_by_index_const(f, i))
                         for i in range(n))
        return read_ints

    def read_bytes(f):
        n = _nbt.field_array_get_length(f)
        return "".join("%02x" % _get_u(_nbt.field_array_borrow_element_field_by_index_const(f, i))
                       for i in range(n))
    return read_bytes


def _plan(struct_fc, names):
    """[(name, index, getter)] for the `names` present in `struct_fc`."""
    if struct_fc is None:
        return []
    keys = list(struct_fc.keys())
    plan = []
    for n in names:
        if n in keys:
            kind, labels = _kind(struct_fc[n].field_class)
            if kind is not None:
                plan.append((n, keys.index(n), _getter(kind, labels)))
    return plan


class _EventClassPlan:
    __slots__ = ("name", "payload", "ctx_pid", "ctx_procname", "skip", "own", "start", "debug",
                 "alloc")

    def __init__(self, ev, fields):
        full = ev.cls.name
        prov, _, short = full.partition(":")
        self.own = prov == "hostmem"
        self.name = short if self.own else full
        wanted = fields.get(self.name)
        self.skip = wanted is None
        self.payload = [] if self.skip else _plan(ev.cls.payload_field_class, wanted)
        # Layout v2: the call's start travels, its end is the event's time.
        self.start = any(n == "start_ns" for n, _, _ in self.payload)
        # Layout v3: a debug allocation's file and line come in malloc_debug,
        # under the seq of the malloc_alloc that follows; the reader joins
        # them, so the model sees one malloc_alloc with file and line as v2
        # recorded it (and never a malloc_debug, which has no seq of its own).
        self.debug = self.own and short == "malloc_debug"
        self.alloc = (self.own and short == "malloc_alloc" and
                      not any(n == "file" for n, _, _ in self.payload))
        cc = ev.stream.cls.event_common_context_field_class
        pid = _plan(cc, ("vpid",))
        name = _plan(cc, ("procname",))
        self.ctx_pid = pid[0] if pid else None
        self.ctx_procname = name[0] if name else None


def _env(stream):
    env = stream.trace.environment
    host = str(env["hostname"]) if "hostname" in env else None
    pid = int(env["vpid"]) if "vpid" in env else None
    name = str(env["procname"]) if "procname" in env else None
    return host, pid, name


class _Sink(bt2._UserSinkComponent):
    """Takes messages in batches and turns the wanted ones into dicts."""

    def __init__(self, config, params, obj):
        self._port = self._add_input_port("in")
        self._fields = obj["fields"]
        self._it = None
        self.out = obj["out"]
        self._obj = obj
        self._classes = {}
        self._streams = {}
        self._procnames = {}
        self._debug = {}  # (stream info, pid, seq) -> (file, line) of a malloc_debug

    def _user_graph_is_configured(self):
        self._it = self._create_message_iterator(self._port)

    def _stream_info(self, sptr, wrap):
        info = self._streams.get(sptr)
        if info is None:
            info = _env(wrap().stream)
            self._streams[sptr] = info
        return info

    def _user_consume(self):
        try:
            self._consume()
        except (bt2.Stop, bt2.TryAgain, bt2._Error):
            raise
        except Exception as e:
            # A bug of ours, not a bad trace: hand it to read() as it is.
            self._obj["error"] = e
            raise bt2.Stop

    def _consume(self):
        status, msgs = _raw.bt2_self_component_port_input_get_msg_range(self._it._ptr)
        if status == _STATUS_END:
            raise bt2.Stop
        if status == _STATUS_AGAIN:
            raise bt2.TryAgain
        if status != _STATUS_OK:
            raise bt2._Error("cannot read the trace")
        try:
            self._handle(msgs)
        finally:
            put = _raw.message_put_ref
            for m in msgs:
                put(m)

    def _wrap(self, m):
        _nbt.message_get_ref(m)
        return _bt2_message._create_from_ptr(m)

    def _handle(self, msgs):
        out = self.out
        classes = self._classes
        get_type = _raw.message_get_type
        EVENT = _raw.MESSAGE_TYPE_EVENT
        borrow_event = _raw.message_event_borrow_event_const
        borrow_class = _raw.event_borrow_class_const
        borrow_payload = _raw.event_borrow_payload_field_const
        borrow_cc = _raw.event_borrow_common_context_field_const
        borrow_stream = _raw.event_borrow_stream_const
        borrow_clock = _raw.message_event_borrow_default_clock_snapshot_const
        ns_from_origin = _raw.clock_snapshot_get_ns_from_origin
        clock_value = _raw.clock_snapshot_get_value
        procnames = self._procnames
        member = _member
        for m in msgs:
            t = get_type(m)
            if t != EVENT:
                if t == _nbt.MESSAGE_TYPE_DISCARDED_EVENTS:
                    self._discarded(m, "events")
                elif t == _nbt.MESSAGE_TYPE_DISCARDED_PACKETS:
                    self._discarded(m, "packets")
                continue
            e = borrow_event(m)
            ckey = int(borrow_class(e))
            plan = classes.get(ckey)
            if plan is None:
                plan = _EventClassPlan(self._wrap(m).event, self._fields)
                classes[ckey] = plan
            if plan.skip:
                continue
            sptr = int(borrow_stream(e))
            host, pid, procname = self._stream_info(sptr, lambda: self._wrap(m).event)
            if plan.ctx_pid is not None:
                cc = borrow_cc(e)
                pid = plan.ctx_pid[2](member(cc, plan.ctx_pid[1]))
                if plan.own:
                    # The procname context is the calling thread's name:
                    # statedump events run in lttng-ust's listener thread
                    # ("prog-ust"), so only hostmem events name the process.
                    pkey = (sptr, pid)
                    procname = procnames.get(pkey)
                    if procname is None and plan.ctx_procname is not None:
                        procname = plan.ctx_procname[2](member(cc, plan.ctx_procname[1]))
                        procnames[pkey] = procname
                else:
                    procname = None
            snap = borrow_clock(m)
            status, ts = ns_from_origin(snap)
            ev = {"name": plan.name, "ts": ts, "host": host, "pid": pid, "procname": procname}
            p = borrow_payload(e)
            for name, idx, get in plan.payload:
                ev[name] = get(member(p, idx))
            if plan.start:
                # lttng-ust's clock is CLOCK_MONOTONIC in ns, as start_ns;
                # 0: the session began during the call.  The library takes
                # start_ns from the TSC (docs/tracing.md): it may be a few ns
                # late, which reads as 0.
                start = ev.pop("start_ns")
                end = clock_value(snap)
                ev["duration_ns"] = (end - start if start <= end else 0) if start > 0 else None
            if plan.debug:
                self._debug[(host, pid, ev.get("seq"))] = (ev.get("file", ""), ev.get("line", 0))
                continue
            if plan.alloc:
                ev["file"], ev["line"] = self._debug.pop((host, pid, ev.get("seq")), ("", 0))
            out.append(ev)

    def _discarded(self, m, kind):
        msg = self._wrap(m)
        host, pid, procname = _env(msg.stream)
        count = msg.count
        self.out.append({"name": "discarded", "kind": kind, "count": count or 0,
                         "unknown_count": count is None, "host": host, "pid": pid,
                         "procname": procname})


def _one_line(err, checked=()):
    """The most useful single line of a bt2 error: its root cause.

    A bt2 error's causes run from the innermost (what went wrong: "No event
    class with ID ...") outwards (each component that gave up because of
    it: "Component's "consume" method failed ...")."""
    text = str(err)
    causes = []
    try:
        for c in err:
            causes.append(c.message)
    except TypeError:
        pass
    for m in causes + [text]:
        lines = [x.strip() for x in m.strip().splitlines() if x.strip()]
        if lines:
            # The same words for the same damage: no addresses of this run,
            # and a repaired view named as the trace it stands for.
            line = re.sub(r"(,\s*)?\b[\w-]+-addr=0x[0-9a-fA-F]+", "", " ".join(lines))
            line = re.sub(r":\s*(,\s*)*$", "", line)
            for c in checked:
                if c.read_dir != c.path:
                    line = line.replace(c.read_dir, c.path)
                    line = line.replace(os.path.dirname(c.read_dir), c.path)
            return line
    return "unknown error"


def new_trust():
    """What read() found about the input: damage, duplicates, decoding stops."""
    return {"damage": [], "duplicates": [], "stopped": []}


def _find_all(paths):
    """(trace directories under `paths`, each directory once; notes on the
    directories given twice)."""
    dirs, dups, by_real = [], [], {}
    for p in paths:
        for d in find_traces(p):
            real = os.path.realpath(d)
            if real in by_real:
                dups.append("%s: the same trace as %s, read once" % (d, by_real[real]))
                continue
            by_real[real] = d
            dirs.append(d)
    return dirs, dups


def unique_traces(paths):
    """(trace directories under `paths`, one per trace; duplicate notes).

    Copies of one trace (ctfcheck's identity: UUID and environment) are
    grouped: the directory given stands for the group (fleet.py hands each
    group to one reader, which takes every copy and reads each file from
    the most complete one)."""
    dirs, dups = _find_all(paths)
    out, by_key = [], {}
    for d in dirs:
        key, _ = ctfcheck.identify(d)
        if key is not None and key in by_key:
            by_key[key].append(d)
            continue
        group = [d]
        if key is not None:
            by_key[key] = group
        out.append(group)
    return out, dups


def _check_all(paths, trust):
    """Checked traces under `paths`, each trace once (its copies joined)."""
    dirs, dups = _find_all(paths)
    trust["duplicates"].extend(dups)
    out, by_key = [], {}
    try:
        for d in dirs:
            try:
                c = ctfcheck.check(d)
            except OSError as e:
                raise TraceError("%s: cannot read the trace: %s" % (d, e.strerror or e)) from None
            if c.key is not None and c.key in by_key:
                by_key[c.key].join(c)
                continue
            if c.key is not None:
                by_key[c.key] = c
            out.append(c)
        for c in out:
            trust["duplicates"].extend(c.duplicates())
            trust["damage"].extend(str(x) for x in c.build())
    except BaseException:
        for c in out:
            c.cleanup()
        raise
    return out


def read(paths, fields, trust=None):
    """Yield the event dicts of every trace under `paths`, in time order,
    each process's events in seq order (reorder.py).

    `fields`: event name -> payload field names to read; other events are
    skipped.  Raises TraceError for input that is not a readable trace.
    `trust` (from new_trust()) collects damaged files (read up to their
    damage), duplicate traces (read once) and where decoding had to stop.

    Several traces are read apart (one babeltrace2 graph each, all open at
    once) and merged by time (read_apart): damage in one stops that trace
    alone, and one that cannot be read leaves the others read.
    """
    if trust is None:
        trust = new_trust()
    groups, dups = unique_traces(paths)
    if len(groups) > 1:
        yield from read_apart(groups, lambda group, t: _read_one(group, fields, t),
                              lambda ev: ev.get("ts"), trust, dups)
        return
    yield from _read_one(paths, fields, trust)


def _read_one(paths, fields, trust):
    """read() of one trace (and its copies)."""
    checked = _check_all(paths, trust)
    try:
        yield from reorder.in_seq_order(_read(checked, paths, fields, trust))
    finally:
        for c in checked:
            c.cleanup()


def read_apart(groups, one, key, trust, dups=()):
    """The items of several traces, each read apart, merged by `key`.

    `groups`: unique_traces()'s (each a trace directory and its copies);
    `one(group, trust)` yields the items of one, in `key` order, and fills
    that trust; `key(item)` is a timestamp (None: the item goes with the one
    before it: a discarded-events note).  The merge streams (one item per
    trace held), in time order; equal times in the order of `groups`, as
    one reader of every trace gives them.  A trace whose reading raises
    TraceError is left out and its reason goes to trust["stopped"], naming
    it; when no trace can be read, the first reason is raised.  `trust`
    receives `dups`, then what each trace's reading found, in trace order.
    """
    import heapq
    parts = [new_trust() for _ in groups]
    unreadable = []

    def apart(i, group):
        last = 0
        try:
            for item in one(group, parts[i]):
                k = key(item)
                if k is None:
                    k = last
                last = k
                yield k, item
        except TraceError as e:
            unreadable.append((i, str(e)))

    its = [apart(i, g) for i, g in enumerate(groups)]
    try:
        for _, item in heapq.merge(*its, key=lambda ki: ki[0]):
            yield item
    finally:
        for it in its:
            it.close()
        trust["duplicates"].extend(dups)
        for t in parts:
            for k, v in t.items():
                trust.setdefault(k, []).extend(v)
        unreadable.sort()
        trust["stopped"].extend("%s (the other traces are read without it)" % u
                                for _, u in unreadable)
    if unreadable and len(unreadable) == len(groups):
        raise TraceError(unreadable[0][1])


def _read(checked, paths, fields, trust):
    dirs = [c.read_dir for c in checked]
    names = ", ".join(c.path for c in checked)
    graph = bt2.Graph()
    try:
        src_cls = bt2.find_plugin("ctf").source_component_classes["fs"]
        mux_cls = bt2.find_plugin("utils").filter_component_classes["muxer"]
        sources = [graph.add_component(src_cls, "src%d" % i, {"inputs": [d]})
                   for i, d in enumerate(dirs)]
        mux = graph.add_component(mux_cls, "mux")
        # The graph hands back a proxy of the sink: share the buffer through obj.
        out = []
        shared = {"fields": fields, "out": out, "error": None}
        sink = graph.add_component(_Sink, "sink", obj=shared)
        n = 0
        for src in sources:
            for port in src.output_ports.values():
                graph.connect_ports(port, mux.input_ports["in%d" % n])
                n += 1
        graph.connect_ports(mux.output_ports["out"], sink.input_ports["in"])
    except bt2._Error as e:
        raise TraceError("%s: cannot open the trace: %s" % (names, _one_line(e, checked))) from None
    if n == 0:
        damage = [str(d) for c in checked for d in c.damage]
        if damage:
            # Nothing readable before the damage: the damage is the news.
            more = " (and %d more damaged files)" % (len(damage) - 1) if len(damage) > 1 else ""
            raise TraceError("%s%s; no hostmem events before the damage" % (damage[0], more))
        raise TraceError("%s: the trace has no data streams" % names)
    got = 0
    while True:
        try:
            graph.run_once()
        except bt2.Stop:
            if shared["error"] is not None:
                raise shared["error"]
            break
        except bt2.TryAgain:
            continue
        except bt2._Error as e:
            # Damage the packet walk did not see (an event cut inside a
            # whole packet, an unknown event class): keep what came before.
            if not got and not out:
                raise TraceError("%s: truncated or corrupt trace: %s"
                                 % (names, _one_line(e, checked))) from None
            trust["stopped"].append("%s: decoding stopped: %s" % (names, _one_line(e, checked)))
            break
        if out:
            got += len(out)
            yield from out
            out.clear()
    yield from out
    out.clear()
