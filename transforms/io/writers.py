"""Writing into the user's output folder, shared by both jobs: JSON-lines shards whose sink
refuses (never deletes) files already under its shard names, and small text files written
atomically through FileSystems (local or gs://)."""

from __future__ import annotations

import json
import posixpath
import uuid

import apache_beam as beam
from apache_beam.io import parquetio, textio, tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

SHARD_TEMPLATE = "-SSSSS-of-NNNNN"


class ShardNameTaken(OSError):
    """A file someone else put under one of this run's shard names, found when Beam finalizes."""


class _NeverReplaces:
    """Beam's file sink, except that files already under the final shard names are refused,
    not deleted: Beam's ``pre_finalize`` deletes every ``part-*-of-NNNNN`` it finds, and in a
    user's folder those may be files this run did not write. (The launcher refuses such a
    folder before the run; this catches a file that appears while it runs.)"""

    def pre_finalize(self, init_result, writer_results):
        pattern = self._get_final_name_glob(len(list(writer_results)))
        taken = [m.path for found in FileSystems.match([pattern]) for m in found.metadata_list]
        if taken:
            raise ShardNameTaken(
                f"{len(taken)} file(s) already under this run's shard names, e.g. {taken[0]}; "
                "not replaced: move them away and rerun"
            )


class _OwnedTextSink(_NeverReplaces, textio._TextSink):
    pass


class _OwnedParquetSink(_NeverReplaces, parquetio._ParquetSink):
    pass


class _OwnedTFRecordSink(_NeverReplaces, tfrecordio._TFRecordSink):
    pass


_OWNED = {
    textio._TextSink: _OwnedTextSink,
    parquetio._ParquetSink: _OwnedParquetSink,
    tfrecordio._TFRecordSink: _OwnedTFRecordSink,
}


def never_replacing(write: beam.PTransform) -> beam.PTransform:
    """``write`` (WriteToText, WriteToParquet or WriteToTFRecord) with its sink made one that
    refuses existing files under its shard names instead of deleting them (the subclass adds
    no state, so the sink built by Beam's own constructor is kept)."""
    write._sink.__class__ = _OWNED[type(write._sink)]
    return write


def to_json_line(record: dict) -> str:
    # sort_keys: identical records serialise to identical bytes (reproducible reruns).
    return json.dumps(record, sort_keys=True, ensure_ascii=False, allow_nan=False)


class WriteJsonLines(beam.PTransform):
    """Writes dicts as JSON lines to ``DIRECTORY/part-*.jsonl``."""

    def __init__(self, directory: str, num_shards: int = 0):
        super().__init__()
        self._directory = directory
        self._num_shards = num_shards

    def expand(self, dicts):
        return (
            dicts
            | "ToJsonLine" >> beam.Map(to_json_line)
            | "WriteJsonLines"
            >> never_replacing(
                beam.io.WriteToText(
                    posixpath.join(self._directory, "part"),
                    file_name_suffix=".jsonl",
                    shard_name_template=SHARD_TEMPLATE,
                    num_shards=self._num_shards,
                )
            )
        )


def write_text(path: str, text: str) -> None:
    """Writes a small text file through FileSystems (local or gs://), atomically: under a
    temporary name first, then renamed, so no reader (or interrupted run) sees half a file."""
    directory, name = posixpath.split(path)
    temporary = posixpath.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode("utf-8"))
    FileSystems.rename([temporary], [path])
