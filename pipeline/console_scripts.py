"""The installed commands ``batch-score`` and ``batch-compare`` (setup.py's console scripts).

Each answers --help and refuses a bad command line from ``pipeline.cli`` before importing its
job (Beam and TensorFlow take seconds). The only module that imports both jobs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline import cli
from pipeline.job_flags import COMPARE, RUN


def batch_score(argv: Sequence[str] | None = None) -> int:
    """The ``batch-score`` console script: answers --help and refuses a bad command line before
    importing the job."""
    argv = sys.argv[1:] if argv is None else list(argv)
    cli.exit_on_help(RUN, argv)
    cli.exit_on_early_refusal(RUN, argv, "batch-score")
    from pipeline.run import main

    return main(argv)


def batch_compare(argv: Sequence[str] | None = None) -> int:
    """The ``batch-compare`` console script: answers --help and refuses a bad command line
    before importing the comparison."""
    argv = sys.argv[1:] if argv is None else list(argv)
    cli.exit_on_help(COMPARE, argv)
    cli.exit_on_early_refusal(COMPARE, argv, "batch-compare")
    from pipeline.compare import main

    return main(argv)
