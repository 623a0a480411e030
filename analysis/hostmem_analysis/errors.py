"""The analysis' error type, importable without the trace decoder (bt2).

Tools and hosts that only report or catch analysis errors import it from
here; ``reader`` re-exports it under its old name.
"""


class TraceError(Exception):
    """Input that is not a readable hostmem trace; the message is one line."""
