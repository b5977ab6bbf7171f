"""ReadTFRecordImages, ReadParquetImages: images packed in shards -> (key, (bytes, uri)).

The shard counterparts of ``ReadImages`` (``--input_format tfrecord|parquet``). Shards are
read by Beam's file-based sources over byte ranges (as Beam's ``ReadAllFromTFRecord`` and
``ReadAllFromParquet`` do), so reading spreads over workers: a TFRecord shard is one range (the
format cannot be split), a Parquet shard splits into ranges of row groups, reshuffled. Records
stream out one at a time (TFRecord) or one row group at a time (Parquet); no shard is held
whole. Beam's sources give neither a record's position nor a way past a bad record, so the
sources here are Beam's with two changes: each record comes with its index, and an unreadable
tail (or row group) becomes one ``corrupt_shard`` error instead of failing the job. TFRecord
framing is read here (``read_tfrecord_frame``), CRCs checked, each length checked against
``--max_file_bytes`` before its payload is read, and its errors say why and where (record index,
byte offset), never quoting the record's bytes.

Each distinct shard name is checked first: a missing shard, a directory or a FIFO is one error
record naming it (``not_found``, ``not_a_regular_file``, ...), and nothing opens it. Then two
passes over the shards:
  * keys only (Parquet reads just the key column): counts the records (``matched``, the
    singleton the sampler needs, computed without image bytes) and finds duplicate keys,
    combined per key, so only the few duplicates reach the image pass, as a side input. With
    ``--skip_existing`` the keys already scored are found here, by a join on keys, and go to
    the image pass grouped by shard as record indices to skip;
  * the image pass: every record is one element, (key, (bytes, uri)) or an error record
    (``missing_image``, ``invalid_record``, ``duplicate_key``: the first occurrence in
    (shard URI, index) order is scored, the others are errors, ``corrupt_shard``,
    ``unsupported_shard``, ``read_error`` for a shard that cannot be opened). Each counts as
    ``matched``; a skipped record counts as matched and skipped, and is left unparsed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from functools import partial

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filebasedsource import FileBasedSource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.iobase import RangeTracker
from apache_beam.io.range_trackers import OffsetRangeTracker
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.tfrecordio import _TFRecordUtil
from apache_beam.metrics import Metrics

from transforms.core import metric_names, records, shard_records, sniff
from transforms.core.common import (
    ERRORS,
    absolute_pattern,
    is_local,
    local_path,
    normalize_uri,
    parse_manifest_line,
)
from transforms.core.file_checks import stat_regular_file
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.core.shard_records import ShardProblem, record_uri
from transforms.score.progress import ProgressHook, report_matched
from transforms.score.read_files import DEFAULT_MAX_FILE_BYTES

# Parquet shards split into ranges of about this many bytes (Beam's own default).
PARQUET_BUNDLE_BYTES = 64 * 1024 * 1024
# Rows turned into Python values at a time, so a row group is not copied whole.
_ROWS_AT_A_TIME = 16
# Rows decoded from a Parquet row group at a time, read through a buffer of this many bytes
# on one thread: memory is a few images and the writer's page, never the whole row group
# (pyarrow's defaults often write a file as one row group).
_PARQUET_SLICE_ROWS = 4
_PARQUET_BUFFER_BYTES = 1 << 20

# What a reader yields for one record: (index, key, image bytes, error). ``key`` is None only
# with an error that has no key; ``image`` is None when the record has none.
Outcome = tuple[int, "str | None", "bytes | None", "records.ImageError | None"]


def _open(source: FileBasedSource, file_name: str, first: bool):
    """The open shard; a ShardProblem when it cannot be opened (reported by the range that
    starts the file, so once), else None."""
    try:
        return source.open_file(file_name)
    except Exception as e:  # noqa: BLE001 - no permission, or the shard went away
        if not first:
            return None
        return ShardProblem(records.READ_ERROR, 0, f"cannot open: {records.error_detail(e)}")


class _BadFrame(ValueError):
    """A TFRecord frame that cannot be read; its message is a reason, never the bytes."""


# A record's payload is read this much at a time, so a length header that lies about a short
# file allocates no more than the bytes really there.
_READ_CHUNK = 1024 * 1024


def _read_exactly(handle, size: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = handle.read(min(_READ_CHUNK, size - len(data)))
        if not chunk:
            raise _BadFrame(f"cut off in its {what} ({len(data):,} of {size:,} bytes)")
        data += chunk
    return bytes(data)


def read_tfrecord_frame(handle, max_bytes: int) -> bytes | None:
    """The next record's payload of a TFRecord stream, None at its end.

    The framing (length, masked CRC32C of the length, payload, masked CRC32C of the payload)
    is read here rather than by Beam: the length is checked against ``max_bytes`` before a
    byte of the payload is read, and no error message quotes the record's bytes.

    Raises:
      _BadFrame: a frame cut off, failing a CRC, or longer than ``max_bytes``.
    """
    header = handle.read(12)
    if not header:
        return None
    if len(header) < 12:
        raise _BadFrame(f"cut off in its length header ({len(header)} of 12 bytes)")
    length, length_crc = struct.unpack("<QI", header)
    if length_crc != _TFRecordUtil._masked_crc32c(header[:8]):
        raise _BadFrame("its length header fails its CRC")
    if length > max_bytes:
        raise _BadFrame(
            f"its length header claims {length:,} bytes, over --max_file_bytes {max_bytes:,}"
        )
    payload = _read_exactly(handle, length, "payload")
    (payload_crc,) = struct.unpack("<I", _read_exactly(handle, 4, "payload CRC"))
    if payload_crc != _TFRecordUtil._masked_crc32c(payload):
        raise _BadFrame("its payload fails its CRC")
    return payload


class _TFRecordShardSource(FileBasedSource):
    """Beam's TFRecord source (unsplittable, compression by extension) yielding
    (record index, payload), and a ShardProblem where the rest cannot be read."""

    def __init__(self, file_name: str, max_record_bytes: int):
        super().__init__(
            file_name, compression_type=CompressionTypes.AUTO, splittable=False, validate=False
        )
        self._max_record_bytes = max_record_bytes

    def read_records(self, file_name, range_tracker):
        index = offset = 0
        handle = _open(self, file_name, first=True)
        if isinstance(handle, ShardProblem):
            yield 0, handle
            return
        with handle:
            while range_tracker.try_claim(offset):
                try:
                    payload = read_tfrecord_frame(handle, self._max_record_bytes)
                except Exception as e:  # noqa: BLE001 - a bad frame, CRC, gzip stream or I/O
                    # Our own reasons in words; others by type alone (an I/O or gzip error's
                    # text is not ours to vouch for: it must not carry the shard's content).
                    reason = str(e) if isinstance(e, _BadFrame) else type(e).__name__
                    message = (
                        f"unreadable from record {index} at byte {offset} "
                        f"(of the decompressed stream when compressed): {reason}"
                    )
                    yield index, ShardProblem(records.CORRUPT_SHARD, offset, message)
                    return
                if payload is None:
                    return
                yield index, payload
                index += 1
                offset += _TFRecordUtil.encoded_num_bytes(payload)


class _ParquetShardSource(FileBasedSource):
    """Beam's Parquet source (split by row group) yielding (first row index, (layout, table))
    per row group, and a ShardProblem for a footer or row group that cannot be read."""

    def __init__(self, file_name: str, image_column: str, key_column, keys_only: bool):
        super().__init__(file_name, validate=False)
        self._layout_args = (image_column, key_column)
        self._keys_only = keys_only

    def read_records(self, file_name, range_tracker):
        import pyarrow.parquet as pq

        start = range_tracker.start_position() or 0
        handle = _open(self, file_name, first=start == 0)
        if handle is None or isinstance(handle, ShardProblem):
            if handle is not None:
                yield 0, handle
            return
        with handle:
            try:
                parquet = pq.ParquetFile(
                    handle, buffer_size=_PARQUET_BUFFER_BYTES, pre_buffer=False
                )
            except Exception as e:  # noqa: BLE001 - a broken footer: nothing can be read
                if start == 0:  # one range reports it, not every range of the file
                    yield 0, ShardProblem(records.CORRUPT_SHARD, 0, _not_parquet(file_name, e))
                return
            try:
                layout = shard_records.parquet_layout(parquet.schema_arrow, *self._layout_args)
            except ValueError as e:
                if start == 0:
                    yield 0, ShardProblem(records.UNSUPPORTED_SHARD, 0, str(e))
                return
            columns = layout.columns(self._keys_only)
            groups = parquet.metadata.num_row_groups
            offsets, first_rows, row = [], [], 0
            for i in range(groups):
                group = parquet.metadata.row_group(i)
                column = group.column(0)
                offsets.append(
                    column.dictionary_page_offset
                    if column.has_dictionary_page
                    else column.data_page_offset
                )
                first_rows.append(row)
                row += group.num_rows
            # As Beam's _ParquetSource: a range reads the row groups that start inside it.
            index = next((i for i in range(groups) if offsets[i] >= start), groups)
            next_start = offsets[index] if index < groups else range_tracker.stop_position()
            range_tracker.set_split_points_unclaimed_callback(
                lambda stop: 0 if next_start >= stop else RangeTracker.SPLIT_POINTS_UNKNOWN
            )
            while range_tracker.try_claim(next_start):
                yield from _row_group_slices(
                    parquet, layout, columns, index, first_rows[index], offsets[index]
                )
                index += 1
                next_start = offsets[index] if index < groups else range_tracker.stop_position()


def _row_group_slices(parquet, layout, columns, index: int, first_row: int, offset: int):
    """(first row index, (layout, table of a few rows)) for one row group, then a ShardProblem
    for its unreadable rest (a corrupt page or column chunk), if any."""
    import pyarrow as pa

    row = first_row
    try:
        for batch in parquet.iter_batches(
            batch_size=_PARQUET_SLICE_ROWS, row_groups=[index], columns=columns, use_threads=False
        ):
            yield row, (layout, pa.Table.from_batches([batch]))
            row += batch.num_rows
    except Exception as e:  # noqa: BLE001 - a corrupt page or column chunk
        rest = "" if row == first_row else f" from row {row}"
        message = (
            f"row group {index} (rows from {first_row}) at byte {offset} is unreadable{rest}: "
            f"{records.error_detail(e)}"
        )
        yield row, ShardProblem(records.CORRUPT_SHARD, offset, message)


def _not_parquet(file_name: str, error: Exception) -> str:
    """Why a Parquet footer could not be read, in words: a file of another format says what
    it looks like (pyarrow's own text for one, "I/O operation on closed file", does not)."""
    try:
        with FileSystems.open(file_name, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            head = f.read(sniff.HEAD_BYTES)
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - sniff.TAIL_BYTES))
            kind = sniff.kind_of(head, f.read(sniff.TAIL_BYTES))
    except Exception:  # noqa: BLE001 - cannot look again: say what pyarrow said
        kind = "parquet"
    if kind == "parquet":
        return f"not a readable Parquet file: {records.error_detail(error)}"
    detail = "no PAR1 magic number at its start and end"
    if kind is not None:
        detail += f"; it looks like {sniff.ONE[kind]}: --input_format {sniff.FORMAT_OF[kind]}"
    return f"not a Parquet file ({detail})"


def _problem_outcome(index: int, problem: ShardProblem) -> Outcome:
    return index, None, None, records.ImageError("read", problem.reason, problem.message)


class _TFRecordFormat:
    """How to read tf.train.Example shards: the source and one record's outcome."""

    splittable = False

    def __init__(self, image_feature: str, key_features: tuple[str, ...], max_record_bytes: int):
        self._image_feature = image_feature
        self._key_features = key_features
        self._max_record_bytes = max_record_bytes

    def source(self, keys_only: bool):
        # TFRecord cannot skip the image bytes: both passes read whole records.
        return partial(_TFRecordShardSource, max_record_bytes=self._max_record_bytes)

    def outcomes(self, shard: str, index: int, payload) -> Iterator[Outcome]:
        if isinstance(payload, ShardProblem):
            yield _problem_outcome(index, payload)
            return
        try:
            key, image = shard_records.parse_example(
                payload, self._image_feature, self._key_features
            )
        except shard_records.InvalidRecord as e:
            yield index, None, None, records.ImageError("read", records.INVALID_RECORD, str(e))
            return
        yield index, key or record_uri(shard, index), image, None


class _ParquetFormat:
    """How to read Parquet shards: the source and the outcomes of one row group."""

    splittable = True

    def __init__(self, image_column: str, key_column: str | None):
        self._image_column = image_column
        self._key_column = key_column

    def source(self, keys_only: bool):
        # The keys-only pass reads the key's column alone: no image bytes.
        return partial(
            _ParquetShardSource,
            image_column=self._image_column,
            key_column=self._key_column,
            keys_only=keys_only,
        )

    def outcomes(self, shard: str, index: int, payload) -> Iterator[Outcome]:
        if isinstance(payload, ShardProblem):
            yield _problem_outcome(index, payload)
            return
        layout, table = payload
        for batch in table.to_batches(max_chunksize=_ROWS_AT_A_TIME):
            for row in batch.to_pylist():
                key, image = shard_records.parquet_row(layout, row, record_uri(shard, index))
                yield index, key, image, None
                index += 1


class _FirstOfDuplicates(beam.CombineFn):
    """Per key: how many records hold it, and the first (shard, index) among them."""

    def create_accumulator(self):
        return 0, None

    def add_input(self, accumulator, location):
        count, first = accumulator
        return count + 1, location if first is None else min(first, location)

    def merge_accumulators(self, accumulators):
        count, first = 0, None
        for other_count, other_first in accumulators:
            count += other_count
            if other_first is not None:
                first = other_first if first is None else min(first, other_first)
        return count, first

    def extract_output(self, accumulator):
        return accumulator


class _CheckShardsDoFn(beam.DoFn):
    """Shard name -> (shard, size) of a regular file or an object, or an error record naming
    the shard (``not_found``, ``not_a_regular_file``, ...): nothing opens a FIFO or a
    directory, and a shard the manifest names but nobody wrote is not silently left out."""

    def __init__(self):
        self._matched = Metrics.counter(METRICS_NAMESPACE, metric_names.MATCHED)
        self._read_errors = Metrics.counter(METRICS_NAMESPACE, metric_names.READ_ERRORS)

    def process(self, shard: str):
        try:
            size = _shard_size(shard)
        except records.ImageError as e:
            self._matched.inc()
            self._read_errors.inc()
            yield beam.pvalue.TaggedOutput(ERRORS, e.record(shard))
            return
        FileSystems.report_source_lineage(shard)
        yield shard, size


def _shard_size(shard: str) -> int:
    """The size of a shard that is a regular file or an object.

    Raises:
      ImageError: not_found, not_a_regular_file, broken_symlink, symlink_loop or read_error.
    """
    if is_local(shard):
        return stat_regular_file(local_path(shard)).st_size
    try:
        found = FileSystems.match([shard])[0].metadata_list
    except Exception as e:  # noqa: BLE001 - an unreachable filesystem: this shard's error
        raise records.ImageError("read", records.READ_ERROR, records.error_detail(e)) from None
    if not found:
        raise records.ImageError("read", records.NOT_FOUND, "no such object")
    return found[0].size_in_bytes


def _read(shard_format, shard: str, offset_range: OffsetRange, keys_only: bool):
    """Every record outcome of the shard's records in ``offset_range``."""
    source = shard_format.source(keys_only)(shard)
    for index, payload in source.read_records(shard, offset_range.new_tracker()):
        yield from shard_format.outcomes(shard, index, payload)


_WHOLE_SHARD = OffsetRange(0, OffsetRangeTracker.OFFSET_INFINITY)


def _locate(element, shard_format) -> Iterator[tuple[str | None, tuple[str, int]]]:
    """Keys pass: (key, (shard, index)) of every record; key None for one without a key."""
    shard, _ = element
    for record_index, key, _, error in _read(shard_format, shard, _WHOLE_SHARD, keys_only=True):
        yield (None if error is not None else key), (shard, record_index)


def _ranges(element, shard_format):
    """(shard, size, indices to skip) -> (shard, byte range, indices to skip) per range read:
    the whole shard, or for a splittable format ranges of about PARQUET_BUNDLE_BYTES (any
    shard gets at least one, so an empty file is still read and reported)."""
    shard, size, skip = element
    ranges = (
        list(OffsetRange(0, size).split(PARQUET_BUNDLE_BYTES, 0)) if shard_format.splittable else []
    )
    for offset_range in ranges or [_WHOLE_SHARD]:
        yield shard, offset_range, skip


class _ReadRecordsDoFn(beam.DoFn):
    """Image pass: each record of a byte range -> (key, (bytes, uri)) or an error record.
    Records at the indices to skip (already scored) are counted and read no further."""

    def __init__(self, shard_format):
        self._format = shard_format
        self._matched = Metrics.counter(METRICS_NAMESPACE, metric_names.MATCHED)
        self._read_errors = Metrics.counter(METRICS_NAMESPACE, metric_names.READ_ERRORS)

    def process(self, element, duplicates):
        shard, offset_range, skip = element
        for record_index, key, image, error in _read(self._format, shard, offset_range, False):
            self._matched.inc()
            if record_index in skip:
                continue
            uri = record_uri(shard, record_index)
            if error is None and duplicates.get(key, uri) != uri:
                error = records.ImageError(
                    "read",
                    records.DUPLICATE_KEY,
                    f"key {key!r} also at {duplicates[key]}, the first occurrence, scored there",
                )
            if error is None and image is None:
                error = records.ImageError(
                    "read", records.MISSING_IMAGE, "the record holds no image bytes"
                )
            if error is not None:
                self._read_errors.inc()
                yield beam.pvalue.TaggedOutput(ERRORS, error.record(uri, key))
                continue
            yield key, (image, uri)


def _skips_by_shard(joined):
    shard, grouped = joined
    for size in grouped["sizes"]:
        yield shard, size, frozenset(grouped["skipped"])


class _ReadShards(beam.PTransform):
    def __init__(self, shard_format, patterns, manifest, progress, skip):
        super().__init__()
        if not patterns and not manifest:
            raise ValueError(f"{type(self).__name__} needs patterns or a manifest")
        self._format = shard_format
        # Resolved on the launcher, as ReadImages does: shard names are part of records' URIs.
        self._base_dir = os.getcwd()
        self._patterns = [absolute_pattern(pattern, self._base_dir) for pattern in patterns]
        self._manifest = manifest
        self._progress = progress
        self._skip = skip

    def expand(self, pbegin):
        sources = []
        if self._patterns:
            sources.append(
                pbegin
                | "CreatePatterns" >> beam.Create(self._patterns)
                | "MatchShards"
                >> fileio.MatchAll(empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
                | "TakePaths"
                >> beam.Map(
                    lambda metadata, base: normalize_uri(metadata.path, base), self._base_dir
                )
            )
        if self._manifest:
            sources.append(
                pbegin
                | "ReadManifest" >> beam.io.ReadFromText(self._manifest, validate=False)
                | "ParseManifest"
                >> beam.FlatMap(
                    lambda line, base: filter(None, [parse_manifest_line(line, base)]),
                    self._base_dir,
                )
            )
        shards = (
            (sources[0] if len(sources) == 1 else tuple(sources) | "MergeSources" >> beam.Flatten())
            | "DeduplicateShards" >> beam.Distinct()
            | "CheckShards" >> beam.ParDo(_CheckShardsDoFn()).with_outputs(ERRORS, main="found")
        )
        # Keys pass: reads each shard where its distinct name landed (the shuffle above spread
        # them), Parquet's key column only.
        located = shards.found | "ReadKeys" >> beam.FlatMap(_locate, self._format)
        records_and_bad_shards = (located, shards[ERRORS]) | "AllRecords" >> beam.Flatten()
        if self._progress is not None:
            # Counted by the keys pass, so a local run knows its total before scoring starts.
            records_and_bad_shards |= "ReportMatched" >> beam.Map(report_matched, self._progress)
        matched = records_and_bad_shards | "CountRecords" >> beam.combiners.Count.Globally()
        first_of_keys = (
            located
            | "DropKeyless" >> beam.Filter(lambda located: located[0] is not None)
            | "CountPerKey" >> beam.CombinePerKey(_FirstOfDuplicates())
        )
        duplicates = first_of_keys | "KeepDuplicates" >> beam.FlatMap(
            lambda kv: [(kv[0], record_uri(*kv[1][1]))] if kv[1][0] > 1 else []
        )
        counts = {"matched": matched}
        if self._skip is None:
            to_read = shards.found | "NoSkips" >> beam.Map(lambda found: (*found, frozenset()))
        else:
            # The join runs on keys and record locations: a shard's skipped indices go to the
            # worker that reads it, and no image bytes are shuffled.
            split = (
                first_of_keys
                | "FirstLocation" >> beam.Map(lambda kv: (kv[0], kv[1][1]))
                | "SkipExisting" >> self._skip
            )
            skipped = split.skipped
            counts["skipped"] = skipped | "CountSkipped" >> beam.combiners.Count.Globally()
            counts["skip_existing_unreadable_lines"] = (
                split.unreadable | "CountUnreadable" >> beam.combiners.Count.Globally()
            )
            to_read = (
                {
                    "sizes": shards.found,
                    "skipped": skipped | "ByShard" >> beam.Values(),
                }
                | "JoinSkips" >> beam.CoGroupByKey()
                | "SkipsByShard" >> beam.FlatMap(_skips_by_shard)
            )
        ranges = to_read | "SplitIntoRanges" >> beam.FlatMap(_ranges, self._format)
        if self._format.splittable:
            ranges = ranges | "Reshard" >> beam.Reshuffle()  # a large shard's ranges spread
        parsed = ranges | "ReadRecords" >> beam.ParDo(
            _ReadRecordsDoFn(self._format), beam.pvalue.AsDict(duplicates)
        ).with_outputs(ERRORS, main="images")
        errors = (shards[ERRORS], parsed[ERRORS]) | "MergeReadErrors" >> beam.Flatten()
        return {"images": parsed.images, ERRORS: errors, **counts}


class ReadTFRecordImages(_ReadShards):
    """Reads images from TFRecord shards of serialized ``tf.train.Example`` records.

    Args:
      patterns: shard file patterns (local or ``gs://``; compression by extension, e.g. ``.gz``).
      manifest: optional text file of shard URIs, one a line.
      image_feature: the bytes feature holding the encoded image.
      key_features: features tried in order for the key; none set: ``SHARD#INDEX``.
      progress: where to report matched records (a local run's progress line), or None.
      skip: a ``SkipExisting`` (or None): records whose key it finds scored are counted as
        skipped and not parsed for their image.
      max_record_bytes: a record whose length header claims more (``--max_file_bytes``) is
        not read: the shard's rest is one ``corrupt_shard`` error.

    Returns:
      A dict: ``images`` of (key, (bytes, ``SHARD#INDEX``)), ``errors`` of error records,
      ``matched`` a singleton count of records; with ``skip``, also the singleton counts
      ``skipped`` and ``skip_existing_unreadable_lines``.
    """

    def __init__(
        self,
        patterns=(),
        manifest: str | None = None,
        image_feature: str = shard_records.DEFAULT_IMAGE_FEATURE,
        key_features: tuple[str, ...] = shard_records.DEFAULT_KEY_FEATURES,
        progress: ProgressHook | None = None,
        skip: beam.PTransform | None = None,
        max_record_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ):
        shard_format = _TFRecordFormat(image_feature, tuple(key_features), max_record_bytes)
        super().__init__(shard_format, patterns, manifest, progress, skip)


class ReadParquetImages(_ReadShards):
    """Reads images from Parquet shards with a binary image column or a struct of ``bytes``
    and ``path``.

    Args:
      patterns: shard file patterns (local or ``gs://``).
      manifest: optional text file of shard URIs, one a line.
      image_column: the binary column, or struct column with ``bytes`` (and ``path``).
      key_column: the key's column; None: the struct's ``path``, else ``id``, else
        ``SHARD#ROW`` (also for a row whose key is null).
      progress: where to report matched records (a local run's progress line), or None.
      skip: a ``SkipExisting`` (or None): records whose key it finds scored are counted as
        skipped and not parsed for their image.

    Returns:
      A dict: ``images`` of (key, (bytes, ``SHARD#ROW``)), ``errors`` of error records,
      ``matched`` a singleton count of records; with ``skip``, also the singleton counts
      ``skipped`` and ``skip_existing_unreadable_lines``.
    """

    def __init__(
        self,
        patterns=(),
        manifest: str | None = None,
        image_column: str = shard_records.DEFAULT_IMAGE_COLUMN,
        key_column: str | None = None,
        progress: ProgressHook | None = None,
        skip: beam.PTransform | None = None,
    ):
        super().__init__(
            _ParquetFormat(image_column, key_column), patterns, manifest, progress, skip
        )
