"""The quiet start: TensorFlow's import-time chatter captured, and the log messages that say
nothing about the job filtered, both shown with ``--log_level debug``."""

from __future__ import annotations

import logging
import sys

from transforms import captured_stderr

# What TensorFlow wrote to stderr while it was imported (see import_tensorflow_quietly).
_startup_noise: list[str] = []


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its import-time chatter captured, for ``--log_level debug``.

    At import, TensorFlow's C++ code writes "All log messages before absl::InitializeLog()",
    "Could not find cuda drivers" and oneDNN notes straight to fd 2, before it reads
    TF_CPP_MIN_LOG_LEVEL, so neither that variable nor Python's logging can hold them back.
    """
    if "tensorflow" in sys.modules:
        return
    with captured_stderr() as text:
        import tensorflow  # noqa: F401
    _startup_noise.extend(text)


# Log messages that say nothing about the job, kept for --log_level debug:
_NOISE = (
    # Beam 2.77 at every model load: it cannot measure memory (its ModelManager needs torch).
    "Resource module is not available",
    # Multi-process workers parse the options the launcher sends, which include flags only the
    # launcher registered (ours, and some of the DirectRunner's): not lost, never needed there.
    "Discarding unparseable args",
    # Multi-process workers on a local machine have no staging directory; nothing is staged.
    "No semi_persistent_directory found",
    # Beam's subprocess server starting and stopping a runner (Prism, Flink's job server), as
    # warnings, at every run on it.
    "Really starting service at",
    "Really destroying service at",
)


def _not_noise(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(text in message for text in _NOISE)


def configure_logging(level: str = "warning") -> None:
    """Sets what reaches the terminal: ``warning`` (the default) keeps warnings and errors but
    not Beam's and TensorFlow's start-up notes (Beam's Prism download attempt offline, TF
    deprecation notes); ``debug`` shows everything, including TensorFlow's import chatter."""
    numeric = getattr(logging, level.upper())
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(numeric)
    logging.getLogger("apache_beam").setLevel(numeric)
    logging.getLogger("tensorflow").setLevel(numeric if numeric <= logging.DEBUG else logging.ERROR)
    # On the handlers: a logger's own filters do not see records propagated from its children.
    for handler in root.handlers:
        if numeric <= logging.DEBUG:
            handler.removeFilter(_not_noise)
        elif _not_noise not in handler.filters:
            handler.addFilter(_not_noise)
    if numeric <= logging.DEBUG:
        for text in _startup_noise:
            sys.stderr.write(text)
        _startup_noise.clear()
