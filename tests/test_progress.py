"""The progress line: counts and a rate measured from the first finished batch."""

import io

from transforms.progress import ProgressReporter


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_first_line_has_no_rate_and_later_rates_are_finite(monkeypatch):
    monkeypatch.setattr(ProgressReporter, "_done", 0)
    monkeypatch.setattr(ProgressReporter, "_start", None)
    monkeypatch.setattr(ProgressReporter, "_last_print", 0.0)
    clock = iter([100.0, 102.5])
    monkeypatch.setattr("transforms.progress.time.monotonic", lambda: next(clock))
    stream = _Terminal()
    reporter = ProgressReporter(every_seconds=2.0, stream=stream)
    reporter.update(32)  # the first batch: nothing to time yet
    reporter.update(32)  # 2.5 s later: 32 more images
    lines = stream.getvalue().split("\r")[1:]
    assert lines == ["  scored 32 images ", "  scored 64 images, 12.8 images/s "]
