"""ReadTFRecordImages, ReadParquetImages: images packed in shards -> (key, (bytes, uri)).

The shard counterparts of ``ReadImages`` (``--input_format tfrecord|parquet``). Shard names come
from ``MatchInputs`` (the front end ``ReadImages`` shares: names as bytes, dangling links and
names that are not UTF-8 kept). Shards are read by Beam's file-based sources over byte ranges
(``transforms.score.shard_formats``), so reading spreads over workers: a TFRecord shard is one
range (the format cannot be split), a Parquet shard splits into ranges of row groups,
reshuffled. Records stream out one at a time (TFRecord) or a few rows at a time (Parquet); no
shard is held whole.

Each distinct shard name is checked first: a missing shard, a dangling link, a directory or a
FIFO is one error record naming it (``not_found``, ``broken_symlink``, ``not_a_regular_file``,
...), and nothing opens it. Then two passes over the shards:
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

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.range_trackers import OffsetRangeTracker
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.metrics import Metrics

from transforms.core import metric_names, records, shard_records
from transforms.core.common import ERRORS, is_local, local_path
from transforms.core.file_checks import stat_regular_file
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.core.shard_records import record_uri
from transforms.io.match_inputs import MatchInputs, path_of, uri_of
from transforms.score.progress import ProgressHook, report_matched
from transforms.score.read_result import DEFAULT_MAX_FILE_BYTES, ReadResult
from transforms.score.shard_formats import ParquetFormat, TFRecordFormat

# Parquet shards split into ranges of about this many bytes (Beam's own default).
PARQUET_BUNDLE_BYTES = 64 * 1024 * 1024


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


@beam.typehints.with_input_types(bytes)
class _CheckShardsDoFn(beam.DoFn):
    """Shard name (bytes) -> (name, size) of a regular file or an object, or an error record
    naming the shard (``not_found``, ``broken_symlink``, ``not_a_regular_file``, ...): nothing
    opens a FIFO or a directory, and a shard a pattern or the manifest names but that cannot be
    read is not silently left out."""

    def __init__(self):
        self._matched = Metrics.counter(METRICS_NAMESPACE, metric_names.MATCHED)
        self._read_errors = Metrics.counter(METRICS_NAMESPACE, metric_names.READ_ERRORS)

    def process(self, name: bytes):
        path = path_of(name)
        try:
            size = _shard_size(path)
        except records.ImageError as e:
            self._matched.inc()
            self._read_errors.inc()
            yield beam.pvalue.TaggedOutput(ERRORS, e.record(uri_of(name)))
            return
        # Lineage is metrics, whose coder takes UTF-8 only: the name as records show it.
        FileSystems.report_source_lineage(uri_of(name))
        yield name, size


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


def _read(shard_format, name: bytes, offset_range: OffsetRange, keys_only: bool):
    """Every record outcome of the named shard's records in ``offset_range``."""
    path, shard = path_of(name), uri_of(name)
    source = shard_format.source(keys_only)(path)
    for index, payload in source.read_records(path, offset_range.new_tracker()):
        yield from shard_format.outcomes(shard, index, payload)


def _location_uri(location: tuple[bytes, int]) -> str:
    """``SHARD#INDEX`` of a record's (shard name, index)."""
    name, index = location
    return record_uri(uri_of(name), index)


_WHOLE_SHARD = OffsetRange(0, OffsetRangeTracker.OFFSET_INFINITY)


def _locate(element, shard_format) -> Iterator[tuple[str | None, tuple[bytes, int]]]:
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


# (shard, byte range, indices to skip), and the duplicates side input {key: first location}.
@beam.typehints.with_input_types(tuple[bytes, OffsetRange, frozenset], dict)
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
            uri = _location_uri((shard, record_index))
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
        self._format = shard_format
        # Built here, on the launcher: relative names resolve against its working directory.
        self._match = MatchInputs(
            patterns, manifest, reader=type(self).__name__, in_name_order=False
        )
        self._progress = progress
        self._skip = skip

    def expand(self, pbegin):
        shards = (
            pbegin
            | "MatchInputs" >> self._match
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
            lambda kv: [(kv[0], _location_uri(kv[1][1]))] if kv[1][0] > 1 else []
        )
        skipped_count = unreadable = None
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
            skipped_count = skipped | "CountSkipped" >> beam.combiners.Count.Globally()
            unreadable = split.unreadable | "CountUnreadable" >> beam.combiners.Count.Globally()
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
        return ReadResult(parsed.images, errors, matched, skipped_count, unreadable)


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
      A ``ReadResult``: ``images`` of (key, (bytes, ``SHARD#INDEX``)), ``errors`` of error
      records, ``matched`` a singleton count of records; with ``skip``, also the singleton
      counts ``skipped`` and ``unreadable_lines``.
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
        shard_format = TFRecordFormat(image_feature, tuple(key_features), max_record_bytes)
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
      A ``ReadResult``: ``images`` of (key, (bytes, ``SHARD#ROW``)), ``errors`` of error
      records, ``matched`` a singleton count of records; with ``skip``, also the singleton
      counts ``skipped`` and ``unreadable_lines``.
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
            ParquetFormat(image_column, key_column), patterns, manifest, progress, skip
        )
