"""Writing into the user's output folder, shared by both jobs: JSON-lines shards whose sink
refuses (never deletes) files already under its shard names, and small text files written
atomically through FileSystems (local or gs://)."""

from __future__ import annotations

import json
import posixpath
import uuid

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.io.beam_private import never_replacing

SHARD_TEMPLATE = "-SSSSS-of-NNNNN"


def to_json_line(record: dict) -> str:
    # sort_keys: identical records serialise to identical bytes (reproducible reruns).
    return json.dumps(record, sort_keys=True, ensure_ascii=False, allow_nan=False)


@beam.typehints.with_input_types(dict)
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
