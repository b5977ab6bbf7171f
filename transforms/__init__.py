"""The stages of the scoring and comparison jobs (one Beam PTransform per module, named for
it), the pure records, maths and TensorFlow functions they apply, and the HTML reports.

Importing the package sets TensorFlow's CPU allocator and, in a Beam SDK worker process,
imports TensorFlow with its start-up notes kept off the terminal (``captured_stderr``).
"""

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

# TensorFlow's default CPU allocator hands every large tensor back to the OS, so the next batch
# page-faults it in again: ~170,000 page faults and ~18 ms of system CPU per image for
# MobileNetV2 at batch 32. The BFC allocator keeps and reuses that memory (same scores, bit for
# bit; the model 1.4-1.9x faster per row). TensorFlow reads this at its first allocation.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")


@contextlib.contextmanager
def captured_stderr(replay: bool = False) -> Iterator[list[str]]:
    """Sends file descriptor 2 (this process's stderr and its children's) to a temporary file
    while the block runs.

    Args:
      replay: also print what was captured when the block succeeds; it is always printed
        when the block raises, so a failure keeps its explanation.

    Yields:
      A list that holds the captured text once the block has ended.
    """
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))
            if replay or failed:
                sys.stderr.write(captured[0])


# A Beam SDK worker process (the DirectRunner's multi_processing mode, Dataflow's workers)
# imports TensorFlow when it unpickles these stages. TensorFlow's import-time C++ notes ("All
# log messages before absl::InitializeLog()", oneDNN, CUDA probing) go straight to fd 2, which a
# local multi-process run shares with the user's terminal; the launcher's own import is quieted
# by pipeline.quiet.import_tensorflow_quietly.
_main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
if (
    getattr(_main_spec, "name", None) == "apache_beam.runners.worker.sdk_worker_main"
    and "tensorflow" not in sys.modules
):
    with captured_stderr():
        import tensorflow  # noqa: F401
