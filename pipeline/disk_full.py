"""A full disk ends a run with one line (exit status 1), not with Beam's tracebacks.

Beam logs a failing step's exception with its traceback, then re-raises it as text inside a
RuntimeError ("OSError: [Errno 28] No space left on device [while running ...]"): the cause is
recognised by its errno, on the exception chain or in that text.
"""

from __future__ import annotations

import contextlib
import errno
import logging

_ENOSPC_TEXT = f"[Errno {errno.ENOSPC}]"


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an exception it was raised from, is ENOSPC."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if _ENOSPC_TEXT in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _not_disk_full(record: logging.LogRecord) -> bool:
    if record.exc_info and is_disk_full(record.exc_info[1]):
        return False
    return _ENOSPC_TEXT not in record.getMessage()


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
