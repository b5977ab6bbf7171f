"""ReadImages: file patterns and/or a manifest of URIs -> (uri, encoded bytes).

Everything goes through Beam's ``FileSystems``, so local paths and ``gs://`` behave alike.
Every distinct matched URI leaves this stage exactly once: as bytes, or as a read error.
"""

from __future__ import annotations

import os
import stat

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.core import metric_names, records
from transforms.core.common import ERRORS, is_local, local_path
from transforms.core.file_checks import file_kind, stat_regular_file
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.io.match_inputs import MatchInputs, display_uri, path_of, uri_of
from transforms.score.name_batches import BatchNames
from transforms.score.progress import ProgressHook, report_matched
from transforms.score.read_result import DEFAULT_MAX_FILE_BYTES, ReadResult


def _too_large(size: str, limit: int) -> records.ImageError:
    return records.ImageError(
        "read",
        records.FILE_TOO_LARGE,
        f"{size} is over --max_file_bytes {limit:,}; not read",
    )


def _bounded_read(f, expected: int, limit: int) -> bytes:
    """Reads at most ``limit`` + 1 bytes: the size was checked, but a file can grow, and some
    report a size they do not have."""
    data = f.read(min(expected, limit) + 1)
    if len(data) <= expected:
        return data
    parts, total = [data], len(data)
    while total <= limit:
        chunk = f.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    data = b"".join(parts)
    if len(data) > limit:
        raise _too_large("the file grew while it was read: it", limit)
    return data


def read_local(path: str, limit: int) -> bytes:
    """Reads a local file of at most ``limit`` bytes.

    Only a regular file is opened, and without blocking (a FIFO swapped in after the check
    would otherwise hang the read); messages never quote the file's contents.

    Raises:
      ImageError: not_found, broken_symlink, symlink_loop, not_a_regular_file,
        file_too_large or read_error.
    """
    info = stat_regular_file(path)
    if info.st_size > limit:
        raise _too_large(f"the file's size {info.st_size:,} bytes", limit)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise records.ImageError("read", records.READ_ERROR, f"cannot read: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # replaced between the check and the open
            raise records.ImageError(
                "read", records.NOT_A_REGULAR_FILE, f"{file_kind(mode)}; not read"
            )
        try:
            return _bounded_read(f, info.st_size, limit)
        except OSError as e:
            raise records.ImageError(
                "read", records.READ_ERROR, f"cannot read: {e.strerror}"
            ) from None


def read_remote(uri: str, limit: int) -> bytes:
    """Reads a remote object (``gs://...``) of at most ``limit`` bytes, like ``read_local``.

    The size comes from the opened reader (GCS's reader fetches the object's metadata as it
    opens), not from a metadata request of its own: one request fewer per image.
    """
    try:
        # UNCOMPRESSED: an image named *.gz must not be gunzipped behind our back.
        f = FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception:  # noqa: BLE001 - a missing object, or no permission to read it
        reason = records.READ_ERROR if _exists(uri) else records.NOT_FOUND
        raise records.ImageError("read", reason, "cannot open the object") from None
    try:
        with f:
            size = f.seek(0, os.SEEK_END)
            if size > limit:
                raise _too_large(f"the object's size {size:,} bytes", limit)
            f.seek(0)
            return _bounded_read(f, size, limit)
    except records.ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - any I/O failure is this element's error
        detail = type(e).__name__
        raise records.ImageError("read", records.READ_ERROR, f"cannot read: {detail}") from None


def read_file(path: str, limit: int) -> bytes:
    """Reads one local file or remote object of at most ``limit`` bytes (``read_local`` or
    ``read_remote``): the checks every reader of image files shares.

    Raises:
      ImageError: as ``read_local`` and ``read_remote``.
    """
    if is_local(path):
        return read_local(local_path(path), limit)
    return read_remote(path, limit)


@beam.typehints.with_input_types(bytes, int)
class _AwaitMatchedDoFn(beam.DoFn):
    """Passes each distinct name on once the job's matched total is known, counting it."""

    def __init__(self):
        self._matched = Metrics.counter(METRICS_NAMESPACE, metric_names.MATCHED)

    def process(self, name: bytes, total: int):
        self._matched.inc()
        yield name


@beam.typehints.with_input_types(bytes)
class _ReadBytesDoFn(beam.DoFn):
    def __init__(self, max_file_bytes: int):
        self._max_file_bytes = max_file_bytes
        self._read_errors = Metrics.counter(METRICS_NAMESPACE, metric_names.READ_ERRORS)

    def process(self, name: bytes):
        path = path_of(name)
        uri = display_uri(path)
        try:
            data = read_file(path, self._max_file_bytes)
        except records.ImageError as e:
            self._read_errors.inc()
            yield beam.pvalue.TaggedOutput(ERRORS, e.record(uri))
            return
        yield uri, data


def _exists(uri: str) -> bool:
    try:
        return FileSystems.exists(uri)
    except Exception:  # noqa: BLE001 - an unreachable filesystem means "cannot tell"
        return True


class ReadImages(beam.PTransform):
    """Matches patterns and reads manifest URIs, then reads each distinct file once.

    Args:
      patterns: file patterns (local or ``gs://``); a pattern that matches nothing fails.
      manifest: optional text file of URIs, one a line.
      max_file_bytes: larger files are not read (``file_too_large``).
      progress: where to report matched URIs (a local run's progress line), or None.
      skip: a ``SkipExisting`` (or None): URIs it finds scored are counted as skipped and never
        read.
      batch_size: the scoring batch size: the names are read in runs of this many, which keeps
        batches exact across bundles (``transforms.score.name_batches``); None reads them as they
        come.

    Returns:
      A ``ReadResult``: ``images`` of (uri, bytes), ``errors`` of error records, and
      ``matched``, a singleton PCollection of the number of distinct URIs (counted from the
      URIs, before any bytes are read, so the reconciliation sample can be sized inside the
      job). With ``skip``, also the singleton counts ``skipped`` and ``unreadable_lines``.
    """

    def __init__(
        self,
        patterns: list[str] | tuple[str, ...] = (),
        manifest: str | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        progress: ProgressHook | None = None,
        skip: beam.PTransform | None = None,
        batch_size: int | None = None,
    ):
        super().__init__()
        self._batch_size = batch_size
        self._progress = progress
        self._skip = skip
        self._match = MatchInputs(patterns, manifest, reader="ReadImages")
        self._max_file_bytes = max_file_bytes

    def expand(self, pbegin):
        # Names travel as bytes until read (transforms.io.match_inputs).
        uris = pbegin | "MatchInputs" >> self._match
        if self._progress is not None:
            # Counted before the shuffle, so a local run knows its total before scoring starts
            # (a URI matched twice counts twice here, once in the job).
            uris = uris | "ReportMatched" >> beam.Map(report_matched, self._progress)
        # Distinct groups by URI: an image matched twice is scored once, and the shuffle spreads
        # reading and decoding over all workers (it doubles as the Reshuffle after matching).
        distinct = uris | "DeduplicateUris" >> beam.Distinct()
        matched = distinct | "CountMatched" >> beam.combiners.Count.Globally()
        # Later stages read ``matched`` as a side input, and a runner cannot fuse a step with
        # the stage that computes its side input. Reading it here moves that fusion break onto
        # the URIs; otherwise it falls between reading and decoding and holds every image's
        # bytes at once.
        counted = distinct | "AwaitMatchedCount" >> beam.ParDo(
            _AwaitMatchedDoFn(), beam.pvalue.AsSingleton(matched)
        )
        skipped = unreadable = None
        if self._skip is not None:
            # Joined on URIs, before any bytes are read: a skipped image costs no read, and
            # the join shuffles names, not images.
            keyed = counted | "KeyByUri" >> beam.Map(lambda name: (uri_of(name), name))
            split = keyed | "SkipExisting" >> self._skip
            skipped = split.skipped | "CountSkipped" >> beam.combiners.Count.Globally()
            unreadable = split.unreadable | "CountUnreadable" >> beam.combiners.Count.Globally()
            # The sampler reads the skipped count too: waited for here, on names, for the
            # reason given above for matched.
            counted = (
                split.unscored
                | "TakeNames" >> beam.Values()
                | "AwaitSkippedCount"
                >> beam.Map(lambda name, _: name, beam.pvalue.AsSingleton(skipped))
            )
        if self._batch_size is not None:
            counted = counted | "BatchNames" >> BatchNames(self._batch_size, matched)
        read = counted | "ReadBytes" >> beam.ParDo(
            _ReadBytesDoFn(self._max_file_bytes)
        ).with_outputs(ERRORS, main="images")
        return ReadResult(read.images, read[ERRORS], matched, skipped, unreadable)
