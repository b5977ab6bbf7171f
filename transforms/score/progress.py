"""The progress line of a local run: done/total, images/s, ETA and errors. On a terminal, one
live line; elsewhere (CI logs, nohup), the same text as a plain line every ~10 s.

The launcher opens a ``ProgressLine`` for the run (``show_progress``) and hands the stages a
``ProgressHook``: a picklable run id. Stages running in the launcher's process (DirectRunner)
report through it to that run's line; anywhere else (Dataflow workers, multi-process workers)
the hook finds no line and does nothing. The line lives exactly as long as its run.

Rate: images scored divided by the seconds since the run started (the same definition as the
summary's images/s), so the last rate shown is the one the summary prints. ETA: the images
left (matched minus scored, errors and skipped) at that rate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator

# rich comes with Keras (a TensorFlow dependency), so every worker has it.
from rich.console import Console
from rich.live import Live
from rich.text import Text

# The lines of the runs in progress in this process, by run id; an entry is removed when its
# run ends, so no progress state outlives a run (or leaks into the next one in a test process).
_LINES: dict[str, ProgressLine] = {}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """One run's counts, drawn as one live line on ``stream`` (a terminal) by rich.

    Args:
      stream: a text stream; nothing is drawn unless ``stream.isatty()``.
      started: ``time.monotonic()`` when the run started (the rate counts from there).
      refresh_per_second: how often the line is redrawn.
    """

    def __init__(self, stream, started: float, refresh_per_second: float = 2.0):
        self._lock = threading.Lock()
        self._started = started
        self.matched = self.scored = self.errors = self.skipped = 0
        self._console = Console(file=stream, force_terminal=True, highlight=False)
        self._live = Live(
            get_renderable=self.render,
            console=self._console,
            refresh_per_second=refresh_per_second,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._stream = stream

    def add(self, matched: int = 0, scored: int = 0, errors: int = 0, skipped: int = 0) -> None:
        with self._lock:
            self.matched += matched
            self.scored += scored
            self.errors += errors
            self.skipped += skipped

    def text(self, now: float | None = None) -> str:
        """The line: ``scored 1,234/10,000 images, 25.3 images/s, ETA 0:05:58, 2 errors``, and
        ``, N skipped`` once ``--skip_existing`` has skipped any (they need no time)."""
        with self._lock:
            matched, scored, errors = self.matched, self.scored, self.errors
            skipped = self.skipped
        elapsed = (time.monotonic() if now is None else now) - self._started
        total = f"{matched:,}" if matched else "?"
        parts = [f"scored {scored:,}/{total} images"]
        if scored and elapsed > 0:
            rate = scored / elapsed
            parts.append(f"{rate:,.1f} images/s")
            if matched:
                left = max(matched - scored - errors - skipped, 0)
                parts.append(f"ETA {_duration(left / rate)}")
        parts.append(f"{errors:,} errors")
        if skipped:
            parts.append(f"{skipped:,} skipped")
        return ", ".join(parts)

    def render(self) -> Text:
        return Text(self.text())

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        """Draws the final counts and ends the line with a newline (what follows starts on a
        line of its own)."""
        self._live.stop()


class PlainProgressLine(ProgressLine):
    """The same counts for a stream that is not a terminal: a plain line every ``interval``
    seconds (no control codes, so a CI log stays readable); the summary follows at the end."""

    def __init__(self, stream, started: float, interval: float = 10.0):
        super().__init__(stream, started)
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._write, name="progress", daemon=True)

    def _write(self) -> None:
        while not self._stopped.wait(self._interval):
            self._stream.write(self.text() + "\n")
            self._stream.flush()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


@contextlib.contextmanager
def show_progress(
    stream, started: float | None = None, enabled: bool = True, interval: float = 10.0
) -> Iterator[ProgressHook | None]:
    """Shows the run's progress on ``stream`` while the block runs: a live line on a terminal,
    else a plain line every ``interval`` seconds.

    Args:
      stream: a text stream.
      started: ``time.monotonic()`` when the run started (default: now).
      enabled: False for runs whose stages do not run in this process.
      interval: seconds between plain lines, where ``stream`` is not a terminal.

    Yields:
      The hook the stages report through, or None when no progress is shown.
    """
    if not enabled:
        yield None
        return
    hook = ProgressHook(uuid.uuid4().hex)
    started = time.monotonic() if started is None else started
    if stream.isatty():
        line = ProgressLine(stream, started)
    else:
        line = PlainProgressLine(stream, started, interval)
    _LINES[hook.run_id] = line
    line.start()
    try:
        yield hook
    finally:
        del _LINES[hook.run_id]
        line.stop()


@dataclasses.dataclass(frozen=True)
class ProgressHook:
    """What stages hold to report progress: picklable, and a no-op where the run's line is not
    in this process."""

    run_id: str

    def add(self, matched: int = 0, scored: int = 0, errors: int = 0, skipped: int = 0) -> None:
        line = _LINES.get(self.run_id)
        if line is not None:
            line.add(matched, scored, errors, skipped)


def report_matched(element, progress: ProgressHook):
    """A ``beam.Map`` step that counts each element as one matched input of the run."""
    progress.add(matched=1)
    return element
