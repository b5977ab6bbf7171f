"""Entry points: the scoring job, the model bundle export, the demo and predict_one."""

import logging
import os
import sys

# TensorFlow's C++ start-up chatter (CPU feature notes, CUDA probing) is not for users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def quiet_logs() -> None:
    """Warnings and errors only: Beam's Prism download attempt, TF deprecation notes and
    Beam 2.77's per-load "cannot measure memory" note (its optional ModelManager import needs
    torch) say nothing about the job."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger().addFilter(
        lambda record: not record.getMessage().startswith("Resource module is not available")
    )


def _interrupted_quietly(kind, value, traceback) -> None:
    """Ctrl-C outside the job itself (while TensorFlow and Beam import, for seconds) ends the
    command with one line, not a traceback; Python still exits with status 130."""
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return
    sys.__excepthook__(kind, value, traceback)


# Installed on import because the entry points import this package before anything heavy.
sys.excepthook = _interrupted_quietly
