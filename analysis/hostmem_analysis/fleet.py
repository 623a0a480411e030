"""Many traces at once (R7): each trace directory is analysed on its own,
on the local cores or on a Dask distributed cluster, and the partial models
merge into one.

A partial model holds nothing that grows with events (model.py): counts,
sums, mergeable latency histograms, live regions and leaks, per-call-site
temporaries, and bounded samples of the totals.  Merging adds counts and
histograms, concatenates leaks, keeps processes apart (a process lives in
one trace directory), and rebuilds the fleet-wide totals over time from each
part's own series, so the merged peak is the peak of the sum, as one reader
over every trace would find it (exact while each part kept every sample;
past 16384 changes a part's series is thinned to its envelope, and the peak
can only be overestimated by the thinning).
"""

import heapq
import io
import os
import zipfile

from . import model as model_mod


def _worker_name():
    """' on worker ADDRESS' inside a Dask worker, else ''."""
    try:
        from distributed import get_worker
        return " on worker %s" % get_worker().address
    except (ImportError, ValueError):
        return ""


def analyse_one(path, temporary_ns=model_mod.DEFAULT_TEMPORARY_NS, engine=None, strict=None):
    """Read one trace into a finished model (runs in a worker).  `path`: its
    directory, or the directories of its copies (a list: each file is read
    from the most complete copy, reader.py).

    `engine` ("c" or "python") and `strict` are the client's choices (a
    remote worker's environment does not carry them; default: this
    process's).  A worker that cannot use the C engine (its library is not
    there, or the input needs babeltrace2) reads with the Python engine, and
    says so in the model it returns (`engine_notes`, printed by the client);
    when strict, it fails with the reason instead."""
    from . import reader
    from .cli import _c_engine, engine_name
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    path = paths[0]
    m = None
    notes = []
    if (engine or engine_name()) == "c":
        m, trust = _c_engine(paths, temporary_ns, keep_all_samples=True, strict=strict,
                             notes=notes, where=_worker_name())
    if m is None:
        m = model_mod.Model(temporary_ns=temporary_ns, keep_all_samples=True)
        trust = reader.new_trust()
        for ev in reader.read(paths, model_mod.FIELDS, trust):
            m.feed(ev)
    m.finish()
    m.input_trust = trust
    m.engine_notes = ["%s%s" % (path, n if n.startswith(" on worker") else ": " + n)
                      for n in notes]
    return m


def analyse_or_reason(path, temporary_ns=model_mod.DEFAULT_TEMPORARY_NS, engine=None,
                      strict=None):
    """analyse_one(), or the one line saying why this trace cannot be read
    (a str): one unreadable trace among several does not stop the others."""
    from .errors import TraceError
    try:
        return analyse_one(path, temporary_ns, engine, strict)
    except TraceError as e:
        return str(e)


def merge(models, temporary_ns=model_mod.DEFAULT_TEMPORARY_NS):
    """One finished model from finished partial models."""
    out = model_mod.Model(temporary_ns=temporary_ns, keep_all_samples=True)
    out.finished = True
    out.input_trust = {"damage": [], "duplicates": [], "stopped": []}
    out.engine_notes = []
    for m in models:
        out.engine_notes += getattr(m, "engine_notes", [])
        out.discarded_events += m.discarded_events
        out.discarded_packets += m.discarded_packets
        out.other_events += m.other_events
        for key, p in m.processes.items():
            q = out.processes.get(key)
            if q is None:
                out.processes[key] = p
            else:
                q.merge(p)
        out.all.merge(m.all, series=False)
        t = getattr(m, "input_trust", None) or {}
        for k in out.input_trust:
            out.input_trust[k].extend(t.get(k, []))
    _sum_series(out.all, [m.all for m in models])
    return out


def _sum_series(dst, parts):
    """dst's totals over time = the sum of the parts' step series."""
    cur_r = [0] * len(parts)
    cur_c = [0] * len(parts)
    def samples(i, st):
        for t, r, c in zip(st.t_ts, st.t_reserved, st.t_committed):
            yield t, i, r, c
    streams = [samples(i, st) for i, st in enumerate(parts)]
    dst.peak_reserved = dst.peak_committed = 0
    dst.peak_reserved_ts = dst.peak_committed_ts = None
    dst.t_ts = type(dst.t_ts)("q")
    dst.t_reserved = type(dst.t_reserved)("q")
    dst.t_committed = type(dst.t_committed)("q")
    dst.reserved = dst.committed = 0
    for t, i, r, c in heapq.merge(*streams):
        dr, dc = r - cur_r[i], c - cur_c[i]
        cur_r[i], cur_c[i] = r, c
        dst.move(t, dr, dc)


def _package_zip():
    """The hostmem_analysis package as a zip, for Dask workers to import."""
    here = os.path.dirname(os.path.abspath(__file__))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(os.listdir(here)):
            if name.endswith(".py"):
                z.write(os.path.join(here, name), "hostmem_analysis/" + name)
    return buf.getvalue()


def run(paths, temporary_ns, jobs=None, scheduler=None):
    """Finished merged model of the trace directories under `paths`; the
    workers' notes (a trace read with babeltrace2, and why) go to stderr."""
    import sys
    from . import reader
    from .cli import engine_name
    dirs, dups = reader.unique_traces(paths)
    engine = engine_name()
    strict = bool(os.environ.get("HOSTMEM_ANALYZE_ENGINE_STRICT"))
    if scheduler:
        parts = _run_dask(dirs, temporary_ns, scheduler, engine, strict)
    elif (jobs or os.cpu_count() or 1) > 1 and len(dirs) > 1:
        from concurrent.futures import ProcessPoolExecutor
        n = len(dirs)
        ex = ProcessPoolExecutor(max_workers=min(n, jobs or os.cpu_count() or 1),
                                 initializer=_worker_init)
        try:
            parts = list(ex.map(analyse_or_reason, dirs, [temporary_ns] * n, [engine] * n,
                                [strict] * n))
        except BaseException:
            # Ctrl-C or an error: the workers' reading is of no use any more.
            for proc in list(getattr(ex, "_processes", {}).values()):
                proc.terminate()
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        ex.shutdown()
    else:
        parts = [analyse_or_reason(d, temporary_ns, engine, strict) for d in dirs]
    # A trace that cannot be read at all: the others are summarised, and the
    # result is incomplete for want of it (all unreadable: nothing to say).
    unreadable = [p for p in parts if isinstance(p, str)]
    if len(unreadable) == len(parts):
        raise reader.TraceError(unreadable[0])
    m = merge([p for p in parts if not isinstance(p, str)], temporary_ns)
    m.input_trust["duplicates"][:0] = dups
    m.input_trust["stopped"].extend("%s (the other traces are summarised without it)" % u
                                    for u in unreadable)
    for note in m.engine_notes:
        sys.stderr.write("hostmem-analyze: %s\n" % note)
    return m


def _worker_init():
    """A local worker leaves Ctrl-C to the client, which ends it."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# Seconds the client waits to reach the scheduler (Dask's own default is 30).
CONNECT_TIMEOUT_S = 10


def _run_dask(dirs, temporary_ns, address, engine, strict):
    try:
        from distributed import Client
    except ImportError as e:
        raise RuntimeError("--scheduler needs Dask distributed (python3-distributed): %s" % e)
    import tempfile
    # A worker runs in a directory of its own (on a machine of its own): it
    # gets each trace directory by its absolute path (on a shared file
    # system, the same on every machine), and what it says of one is said
    # back in the words the user gave.
    absolute = [[os.path.abspath(x) for x in d] for d in dirs]
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 -- OSError, TimeoutError, ValueError for a bad address
        why = str(e).strip().splitlines()
        raise RuntimeError("--scheduler %s: cannot reach the Dask scheduler (%s)"
                           % (address, why[0] if why else type(e).__name__))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            z = os.path.join(tmp, "hostmem_analysis.zip")
            with open(z, "wb") as f:
                f.write(_package_zip())
            client.upload_file(z)
        futures = client.map(analyse_or_reason, absolute, temporary_ns=temporary_ns, engine=engine,
                             strict=strict, pure=False)
        parts = client.gather(futures)
    finally:
        client.close()
    out = []
    for m, ds, As in zip(parts, dirs, absolute):
        for d, a in zip(ds, As):
            if a == d:
                continue
            if isinstance(m, str):
                m = m.replace(a, d)
                continue
            for notes in [m.engine_notes] + list(m.input_trust.values()):
                notes[:] = [n.replace(a, d) for n in notes]
        out.append(m)
    return out
