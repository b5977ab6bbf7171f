"""The writing stages: predictions, dead letters and reconciliation into the output layout.

```
OUTPUT/predictions/part-*.{jsonl,parquet,tfrecord.gz}      WritePredictions
OUTPUT/errors/part-*.jsonl                                 WriteErrors (counted by reason)
OUTPUT/reconciliation/elements/part-*.jsonl                WriteReconciliation
OUTPUT/reconciliation/summary.json                         WriteReconciliation (atomic)
```

``report.html`` is drawn from summary.json by the launcher once the job has finished
(``transforms.report.publish``): workers never import matplotlib.

Also the helpers other writers share: ``WriteJsonLines`` (sorted-key JSON lines) and
``write_text`` (one small file, written atomically through FileSystems).
"""

from __future__ import annotations

import json
import posixpath
import uuid

import apache_beam as beam
from apache_beam.io import parquetio, textio, tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.core import metric_names, prediction_formats
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.score.progress import ProgressHook

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


class _CountErrorsDoFn(beam.DoFn):
    """Counts every dead letter, in total and by reason, where all stages' errors meet."""

    def __init__(self, progress: ProgressHook | None):
        self._errors = Metrics.counter(METRICS_NAMESPACE, metric_names.ERRORS)
        self._progress = progress

    def process(self, record: dict):
        self._errors.inc()
        if self._progress is not None:
            self._progress.add(errors=1)
        Metrics.counter(METRICS_NAMESPACE, metric_names.errors_by_reason(record["reason"])).inc()
        yield record


class WriteErrors(beam.PTransform):
    """Error records of every stage -> ``OUTPUT/errors/part-*.jsonl``, counted by reason.

    Args:
      output: the job's output directory.
      num_shards: output shards; 0 lets the runner choose.
      progress: where to report errors (a local run's progress line), or None.
    """

    def __init__(self, output: str, num_shards: int = 0, progress: ProgressHook | None = None):
        super().__init__()
        self._progress = progress
        self._directory = posixpath.join(output, "errors")
        self._num_shards = num_shards

    def expand(self, errors):
        return (
            errors
            | "CountErrors" >> beam.ParDo(_CountErrorsDoFn(self._progress))
            | "WriteJsonl" >> WriteJsonLines(self._directory, self._num_shards)
        )


class WritePredictions(beam.PTransform):
    """Prediction records -> ``OUTPUT/predictions`` in the chosen format."""

    def __init__(self, output: str, output_format: str = "jsonl", num_shards: int = 0):
        super().__init__()
        self._directory = posixpath.join(output, "predictions")
        self._format = output_format
        self._num_shards = num_shards

    def expand(self, predictions):
        prefix = posixpath.join(self._directory, "part")
        if self._format == "jsonl":
            return predictions | "WriteJsonl" >> WriteJsonLines(self._directory, self._num_shards)
        if self._format == "parquet":
            return (
                predictions
                | "ToParquetRow" >> beam.Map(prediction_formats.to_parquet_row)
                | "WriteParquet"
                >> never_replacing(
                    beam.io.WriteToParquet(
                        prefix,
                        prediction_formats.PARQUET_SCHEMA,
                        file_name_suffix=".parquet",
                        shard_name_template=SHARD_TEMPLATE,
                        num_shards=self._num_shards,
                    )
                )
            )
        if self._format == "tfrecord":
            return (
                predictions
                | "ToPredictionLog" >> beam.Map(prediction_formats.to_prediction_log)
                | "WriteTFRecord"
                >> never_replacing(
                    beam.io.WriteToTFRecord(
                        prefix,
                        file_name_suffix=".tfrecord.gz",
                        compression_type=CompressionTypes.GZIP,
                        shard_name_template=SHARD_TEMPLATE,
                        num_shards=self._num_shards,
                    )
                )
            )
        raise ValueError(f"unknown output format {self._format!r}")


# Beside summary.json until the launcher has drawn the report from both, then removed:
# thumbnails are for the report, and summary.json stays small and greppable.
THUMBNAILS_JSON = ".thumbnails.json"


def _summary_json(summary: dict) -> str:
    worst = [{k: v for k, v in w.items() if k != "thumbnail"} for w in summary["worst"]]
    return json.dumps(summary | {"worst": worst}, indent=2, allow_nan=False) + "\n"


def _write_summary_files(summary: dict, directory: str) -> str:
    # One thumbnail (or None) per worst element, in the summary's order.
    thumbnails = [w.get("thumbnail") for w in summary["worst"]]
    write_text(posixpath.join(directory, THUMBNAILS_JSON), json.dumps(thumbnails) + "\n")
    write_text(posixpath.join(directory, "summary.json"), _summary_json(summary))
    return directory


def write_text(path: str, text: str) -> None:
    """Writes a small text file through FileSystems (local or gs://), atomically: under a
    temporary name first, then renamed, so no reader (or interrupted run) sees half a file."""
    directory, name = posixpath.split(path)
    temporary = posixpath.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode("utf-8"))
    FileSystems.rename([temporary], [path])


class WriteReconciliation(beam.PTransform):
    """Reconcile's outputs -> ``OUTPUT/reconciliation/{elements/part-*.jsonl, summary.json}``.
    The summary is one small record, written once, atomically, with its worst elements'
    thumbnails beside it (``THUMBNAILS_JSON``) for the launcher's report.

    Args:
      output: the job's output directory.
      num_shards: element record shards; 0 lets the runner choose.

    The input is a dict: ``elements`` and ``summary`` from Reconcile.
    """

    def __init__(self, output: str, num_shards: int = 0):
        super().__init__()
        self._directory = posixpath.join(output, "reconciliation")
        self._num_shards = num_shards

    def expand(self, reconciled):
        (
            reconciled["elements"]
            | "ToRecords" >> beam.Map(lambda c: c.to_record())
            | "WriteElements"
            >> WriteJsonLines(posixpath.join(self._directory, "elements"), self._num_shards)
        )
        return reconciled["summary"] | "WriteSummary" >> beam.Map(
            _write_summary_files, self._directory
        )
