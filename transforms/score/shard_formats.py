"""How each shard format is read: its Beam source over byte ranges, and one record's outcome.

``TFRecordFormat`` and ``ParquetFormat`` are what ``transforms.score.read_shards`` reads shards
with. Beam's sources give neither a record's position nor a way past a bad record, so the
sources here are Beam's with two changes: each record comes with its index, and an unreadable
tail (or row group) becomes one ``corrupt_shard`` problem instead of failing the job. TFRecord
framing is ``transforms.io.tfrecord_frames``'s (CRCs checked, each length checked against
``--max_file_bytes`` before its payload is read); errors say why and where (record index, byte
offset), never quoting a record's bytes. A Parquet shard splits into ranges of row groups,
each read a few rows at a time, so no row group is held whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial

from apache_beam.io.filebasedsource import FileBasedSource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.iobase import RangeTracker

from transforms.core import records, shard_records, sniff
from transforms.core.shard_records import ShardProblem, record_uri
from transforms.io.tfrecord_frames import CorruptFrames, TFRecordSource, iter_frames

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


class _TFRecordShardSource(TFRecordSource):
    """The TFRecord source (compression by extension) yielding (record index, payload), and
    a ShardProblem where the rest cannot be read."""

    def __init__(self, file_name: str, max_record_bytes: int):
        super().__init__(file_name, max_record_bytes, "--max_file_bytes")

    def read_records(self, file_name, range_tracker):
        handle = _open(self, file_name, first=True)
        if isinstance(handle, ShardProblem):
            yield 0, handle
            return
        with handle:
            try:
                yield from iter_frames(
                    handle, self.max_record_bytes, self.limit_name, range_tracker.try_claim
                )
            except CorruptFrames as e:
                yield e.index, ShardProblem(records.CORRUPT_SHARD, e.offset, str(e))


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


class TFRecordFormat:
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


class ParquetFormat:
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
