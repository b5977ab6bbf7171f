"""Entry points: the scoring job, the model bundle export, the demo and predict_one.

Flags, help and exit codes of every command are in ``pipeline.cli`` (no Beam, no TensorFlow).
"""

import os

# TensorFlow's C++ logging after import (e.g. "failed call to cuInit" on a CPU-only machine) is
# not for users; what it prints during the import itself is caught by
# pipeline.cli.import_tensorflow_quietly.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
