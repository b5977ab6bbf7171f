"""ReadResult: what every scoring reader returns (``ReadImages``, ``ReadTFRecordImages``,
``ReadParquetImages``), and the size limit the file and shard readers share.

Here, not in one reader's module, so no reader imports another for a name. The outputs carry
no Beam output hints: ``tuple[str, bytes]``, ``dict`` or ``bytes`` would change the coder Beam
picks for them (FastPrimitivesCoder's); ``Preprocess`` declares the images' type it takes
(``records.EncodedImage``).
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

# The default of --max_file_bytes: no image worth scoring is larger, and one worker may hold a
# batch of them in memory at once.
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024


class ReadResult(NamedTuple):
    """A reader's outputs (PCollections; the last two only with ``--skip_existing``)."""

    # (uri, bytes) from files, (key, (bytes, SHARD#INDEX)) from shards.
    images: beam.PCollection
    errors: beam.PCollection  # error records (dicts)
    # Singleton: the distinct inputs (files) or records (shards), counted before any image
    # bytes are read, so the reconciliation sample can be sized inside the job.
    matched: beam.PCollection
    skipped: beam.PCollection | None = None  # singleton: inputs an earlier run scored
    # Singleton: earlier runs' prediction lines that hold no record (their keys are rescored).
    unreadable_lines: beam.PCollection | None = None
