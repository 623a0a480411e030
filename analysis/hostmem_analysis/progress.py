"""Progress of a long read, on a terminal only (stderr), with tqdm when installed.

Nothing is printed when stderr is not a terminal (pipes, CI logs, tests).
The total is estimated from the size of the stream files (about 60 bytes
per event), so the bar shows events, rate and time left.
"""

import os
import sys

BYTES_PER_EVENT = 60
UPDATE_EVERY = 1 << 14


def _stream_bytes(dirs):
    n = 0
    for d in dirs:
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if name != "metadata" and os.path.isfile(p):
                n += os.path.getsize(p)
    return n


def counter(dirs, stream=None):
    """A bar updated by hand (update(n), close()), or None when none is shown."""
    stream = stream or sys.stderr
    if not stream.isatty() or os.environ.get("HOSTMEM_ANALYZE_PROGRESS") == "0":
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    total = _stream_bytes(dirs) // BYTES_PER_EVENT or None
    if total is not None and total < 500000:
        return None  # done in a moment: no bar
    return tqdm(total=total, unit=" ev", unit_scale=True, file=stream, desc="reading",
                leave=False)


def wrap(events, dirs, stream=None):
    bar = counter(dirs, stream)
    return events if bar is None else _counted(events, bar)


def _counted(events, bar):
    k = 0
    try:
        for ev in events:
            yield ev
            k += 1
            if k == UPDATE_EVERY:
                bar.update(k)
                k = 0
        bar.update(k)
    finally:
        bar.close()
