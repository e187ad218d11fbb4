"""Ctrl-C that cannot be lost.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode. When that bytecode belongs to a
finaliser (a ``__del__`` the garbage collector runs), the exception is printed as "Exception ignored"
and dropped, and the command carries on to its end as if nothing had been pressed. CI saw exactly
that: a Ctrl-C during model loading landed in ``regex``'s ``Group.__del__`` and training finished.
So the handler of :func:`install` records the signal; it raises at once unless a finaliser is
running (where raising would only print a traceback and be dropped), and long loops call
:func:`raise_if_interrupted` once per step, which stops the command at the next step either way.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_requested = False


def _in_finaliser(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    if not _in_finaliser(frame):
        raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through the recording handler (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def requested() -> bool:
    """Whether Ctrl-C was pressed since :func:`install` (or the last :func:`reset`)."""
    return _requested


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C was pressed, even one a finaliser swallowed."""
    if _requested:
        raise KeyboardInterrupt


def reset() -> None:
    """Forget a recorded Ctrl-C (for a process that handles one and carries on, as a test does)."""
    global _requested
    _requested = False
