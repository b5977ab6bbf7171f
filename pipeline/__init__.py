"""Entry points: the scoring job (``run``), the run comparison (``compare``), the shard packer
(``shard``), the model bundle export, the demo and ``predict_one``; and what only launchers
need: the flag tables (``flags``, ``job_flags``, ``tool_flags``) and their parsers (``cli``;
no Beam, no TensorFlow), the Beam jobs' command line (``options``, ``job_config``), the shared
checks before any work (``preflight``), the scoring job's graph (``graph``), its record
(``run_record``) and summary (``run_summary``), the output directory rules (``outputs``), the
machine recorded in run.json (``environment``); ``console_scripts``: the installed commands.
"""

import os
import sys

# TensorFlow's C++ logging after import (e.g. "failed call to cuInit" on a CPU-only machine) is
# not for users; what it prints during the import itself is caught by
# pipeline.quiet.import_tensorflow_quietly.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _interrupted_quietly(kind, value, traceback) -> None:
    """Ctrl-C outside the job itself (while TensorFlow and Beam import, for seconds) ends the
    command with one line, not a traceback; Python still exits with status 130."""
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return
    sys.__excepthook__(kind, value, traceback)


# Installed on import because the entry points import this package before anything heavy.
sys.excepthook = _interrupted_quietly
