"""Stopping a run: SIGINT (Ctrl-C) and SIGTERM (what schedulers send) become one line and exit
status 130, never a screen of tracebacks from the steps Beam unwinds."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run: exit status 130, one line, outputs incomplete."""

    def __init__(self, output: str):
        super().__init__(f"interrupted; outputs in {output} are incomplete")


@contextlib.contextmanager
def interruptible(output: str):
    """SIGINT and SIGTERM (what schedulers send) become ``Interrupted``.

    Beam re-raises a failure inside a transform as a RuntimeError naming the step, so the
    signal is remembered here rather than recognised by the exception's type.
    """
    received = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    # Signal handlers can be installed only from the main thread (a test may run elsewhere).
    signals = (signal.SIGINT, signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    previous = [signal.signal(signum, interrupt) for signum in signals] if in_main else []
    # Once interrupted, Beam logs the KeyboardInterrupt of every step it unwinds, with its
    # traceback: the user asked to stop, and gets one line instead.
    handlers = [h for h in (*logging.getLogger().handlers, logging.lastResort) if h is not None]

    def mute(record: logging.LogRecord) -> bool:
        return not received

    # The signal can land inside a finaliser or a callback, where Python prints "Exception
    # ignored in ..." with a traceback instead of raising it: muted too, once interrupted.
    unraisable = sys.unraisablehook

    def ignore_once_interrupted(info) -> None:
        if not received:
            unraisable(info)

    sys.unraisablehook = ignore_once_interrupted
    for handler in handlers:
        handler.addFilter(mute)
    try:
        yield
    except BaseException as e:
        if received or isinstance(e, KeyboardInterrupt):
            raise Interrupted(output) from None
        raise
    finally:
        sys.unraisablehook = unraisable
        for handler in handlers:
            handler.removeFilter(mute)
        for signum, handler in zip(signals, previous, strict=False):
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
