"""Progress on stderr for long local runs: images done and images/s, only on a terminal."""

from __future__ import annotations

import sys
import threading
import time


class ProgressReporter:
    """Counts images scored in this process and redraws one status line every few seconds.

    Silent unless stderr is a terminal, so logs and CI output stay clean.
    """

    _lock = threading.Lock()
    _done = 0
    _start: float | None = None  # when the first batch was done; the rate counts from there
    _done_at_start = 0
    _last_print = 0.0

    def __init__(self, every_seconds: float = 2.0, stream=None):
        self._every = every_seconds
        self._stream = stream or sys.stderr

    def update(self, count: int) -> None:
        cls = ProgressReporter
        with cls._lock:
            now = time.monotonic()
            cls._done += count
            if cls._start is None:
                cls._start, cls._done_at_start = now, cls._done
            if not self._stream.isatty() or now - cls._last_print < self._every:
                return
            cls._last_print = now
            line = f"\r  scored {cls._done:,} images"
            if cls._done > cls._done_at_start:
                rate = (cls._done - cls._done_at_start) / (now - cls._start)
                line += f", {rate:,.1f} images/s"
            self._stream.write(line + " ")
            self._stream.flush()
