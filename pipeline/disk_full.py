"""A full disk ends every command with one line (exit status 1), not with tracebacks.

Beam logs a failing step's exception with its traceback, then re-raises it as text inside a
RuntimeError ("OSError: [Errno 28] No space left on device [while running ...]"); TensorFlow
raises ResourceExhaustedError ("PATH; No space left on device"), with no errno: the cause is
recognised by its errno, on the exception chain, or by the system's ENOSPC text.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable

from pipeline.flags import EXIT_DISK_FULL

STDOUT_INCOMPLETE = "what it printed is incomplete: free space, then rerun"
_ENOSPC_TEXTS = (f"[Errno {errno.ENOSPC}]", os.strerror(errno.ENOSPC))


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an exception it was raised from, is ENOSPC."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if _names_enospc(str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def _names_enospc(text: str) -> bool:
    return any(marker in text for marker in _ENOSPC_TEXTS)


def _not_disk_full(record: logging.LogRecord) -> bool:
    if record.exc_info and is_disk_full(record.exc_info[1]):
        return False
    return not _names_enospc(record.getMessage())


@contextlib.contextmanager
def quiet_when_disk_full():
    """Drops log records about ENOSPC while the job runs: the caller says it in one line."""
    root = logging.getLogger()
    handlers = [h for h in (*root.handlers, logging.lastResort) if h is not None]
    for handler in handlers:
        handler.addFilter(_not_disk_full)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(_not_disk_full)


def report(prog: str, writing: str, outcome: str) -> int:
    """Says a full disk met while writing ``writing`` in one line; returns EXIT_DISK_FULL.

    ``outcome`` says what is left behind and what to do, e.g. "the bundle there is incomplete:
    free space, then rerun into a new --output".
    """
    print(
        f"{prog}: error: no space left on the device while writing {writing}; {outcome}",
        file=sys.stderr,
    )
    return EXIT_DISK_FULL


def exit_status(prog: str, main: Callable[[], int]) -> int:
    """Runs a command's ``main`` for ``python -m``: a full standard output is one line too.

    Each main() answers a full disk under its --output; what still meets ENOSPC here is its
    standard output (redirected onto a full disk). Python would otherwise print a traceback,
    or "Exception ignored" when it flushes at exit.
    """
    try:
        status = main()
        sys.stdout.flush()
    except Exception as e:
        if not is_disk_full(e):
            raise
        # What stays in the buffer would fail again at exit: send it nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return report(prog, "standard output", STDOUT_INCOMPLETE)
    return status
