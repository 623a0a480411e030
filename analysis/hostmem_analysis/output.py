"""Output files written whole or not at all, and checked before any reading.

Every file the analysis writes (export's table and Perfetto JSON, the
report's pages and plots) is written to a temporary file beside it and
renamed over its name when complete: an error, a damaged input or Ctrl-C
leaves the file that was there (or none), never half of a new one.
"""

import contextlib
import os
import signal
import threading


class OutputError(Exception):
    """An output that cannot be written where asked; the message is one line."""


# SIGINTs received (on_sigint).  A KeyboardInterrupt raised while babeltrace2
# runs Python code of ours (its sink's callbacks) would be taken for an error
# of the trace's (the reading ends as if the trace were damaged), or crash
# it; there the interrupt is only noted, and raised by the reading loops
# (`if interrupts: raise KeyboardInterrupt`, once per event) and before any
# output is kept (check_interrupted).
interrupts = []
_BT2 = os.sep + "bt2" + os.sep


def on_sigint(sig, frame):
    """SIGINT handler: note it; raise KeyboardInterrupt, as Python's own
    does, unless babeltrace2 is running (a frame of its bindings below)."""
    interrupts.append(sig)
    while frame is not None:
        if _BT2 in frame.f_code.co_filename:
            return
        frame = frame.f_back
    raise KeyboardInterrupt


def check_interrupted():
    """Raise KeyboardInterrupt when a SIGINT came, even if it was swallowed."""
    if interrupts:
        raise KeyboardInterrupt


def _why(e):
    return e.strerror or str(e)


@contextlib.contextmanager
def atomic(path, mode="w", **kwargs):
    """open(path, mode) on a temporary file beside `path`, renamed to `path`
    when the block ends normally, removed when it raises (KeyboardInterrupt
    too).  The new file's permissions follow the umask, as open()'s do."""
    d, base = os.path.split(os.path.abspath(path))
    tmp = None
    # No Ctrl-C between the temporary file's creation and the cleanup that
    # removes it on one: SIGINT waits until then.
    masked = threading.current_thread() is threading.main_thread()
    if masked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for i in range(100):
            name = os.path.join(d, ".%s.%d.%d.tmp" % (base, os.getpid(), i))
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as e:
                raise OutputError("%s: cannot write (%s)" % (path, _why(e)))
            tmp = name
            break
        if tmp is None:
            raise OutputError("%s: cannot make a temporary file beside it" % path)
    except BaseException:
        if masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        raise
    try:
        if masked:  # a Ctrl-C that waited comes here, where the cleanup sees it
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        check_interrupted()
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError("%s: cannot write (%s)" % (path, _why(e)))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path, text):
    with atomic(path) as f:
        f.write(text)


def _inside(child, parent):
    try:
        return os.path.commonpath([child, parent]) == parent
    except ValueError:
        return False


def check_not_input(path, inputs, option="-o"):
    """Refuse an output that is one of the input traces or lies inside one:
    writing it would replace (or grow inside) what is being read."""
    out = os.path.realpath(path)
    for t in inputs:
        real = os.path.realpath(t)
        if _inside(out, real):
            raise OutputError("%s %s: inside the input trace %s; write it elsewhere"
                              % (option, path, t))


def check_file(path, inputs, option="-o"):
    """Before any reading: `path` can be written as a file."""
    check_not_input(path, inputs, option)
    if os.path.isdir(path):
        raise OutputError("%s %s: is a directory" % (option, path))
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise OutputError("%s %s: no such directory %s" % (option, path, d))
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputError("%s %s: cannot write in %s (permission denied)" % (option, path, d))


def check_dir(path, inputs, option="-o"):
    """Before any reading: `path` is a directory that can be written, or one
    can be made there (it is made when written: make_dir)."""
    check_not_input(path, inputs, option)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError("%s %s: not a directory" % (option, path))
    d = os.path.abspath(path)
    while not os.path.exists(d):
        d = os.path.dirname(d)
    if not os.path.isdir(d):
        raise OutputError("%s %s: %s is not a directory" % (option, path, d))
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputError("%s %s: cannot write in %s (permission denied)" % (option, path, d))


def make_dir(path, option="-o"):
    """The directory `path`, made with its parents when missing."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError("%s %s: not a directory" % (option, path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputError("%s %s: cannot make the directory (%s)" % (option, path, _why(e)))
