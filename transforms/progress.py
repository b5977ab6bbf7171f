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
    _start: float | None = None
    _last_print = 0.0

    def __init__(self, every_seconds: float = 2.0, stream=None):
        self._every = every_seconds
        self._stream = stream or sys.stderr

    def update(self, count: int) -> None:
        cls = ProgressReporter
        with cls._lock:
            now = time.monotonic()
            if cls._start is None:
                cls._start = now
            cls._done += count
            if not self._stream.isatty() or now - cls._last_print < self._every:
                return
            cls._last_print = now
            rate = cls._done / max(now - cls._start, 1e-9)
            self._stream.write(f"\r  scored {cls._done:,} images, {rate:,.1f} images/s ")
            self._stream.flush()
