"""The writing stages: predictions, dead letters and reconciliation into the output layout.

```
OUTPUT/predictions/part-*.{jsonl,parquet,tfrecord.gz}      WritePredictions
OUTPUT/errors/part-*.jsonl                                 WriteErrors (counted by reason)
OUTPUT/reconciliation/elements/part-*.jsonl                WriteReconciliation
OUTPUT/reconciliation/summary.json                         WriteReconciliation (atomic)
```

``report.html`` is drawn from summary.json by the launcher once the job has finished
(``transforms.report.publish``): workers never import matplotlib.

The writers both jobs share (``WriteJsonLines``, ``write_text``) are in ``transforms.io.writers``.
"""

from __future__ import annotations

import json
import posixpath

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from transforms.core import metric_names, prediction_formats
from transforms.core.common import THUMBNAILS_JSON
from transforms.core.comparisons import ElementComparison
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.io.writers import (
    SHARD_TEMPLATE,
    WriteJsonLines,
    never_replacing,
    write_text,
)
from transforms.score.progress import ProgressHook


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


@beam.typehints.with_input_types(dict)
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


@beam.typehints.with_input_types(dict)
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


def _summary_json(summary: dict) -> str:
    worst = [{k: v for k, v in w.items() if k != "thumbnail"} for w in summary["worst"]]
    return json.dumps(summary | {"worst": worst}, indent=2, allow_nan=False) + "\n"


def _write_summary_files(summary: dict, directory: str) -> str:
    # One thumbnail (or None) per worst element, in the summary's order.
    thumbnails = [w.get("thumbnail") for w in summary["worst"]]
    write_text(posixpath.join(directory, THUMBNAILS_JSON), json.dumps(thumbnails) + "\n")
    write_text(posixpath.join(directory, "summary.json"), _summary_json(summary))
    return directory


class WriteReconciliation(beam.PTransform):
    """Reconcile's outputs -> ``OUTPUT/reconciliation/{elements/part-*.jsonl, summary.json}``.
    The summary is one small record, written once, atomically, with its worst elements'
    thumbnails beside it (``THUMBNAILS_JSON``) for the launcher's report.

    Args:
      output: the job's output directory.
      num_shards: element record shards; 0 lets the runner choose.

    The input is Reconcile's ``ReconcileResult``: ``elements`` and ``summary``.
    """

    def __init__(self, output: str, num_shards: int = 0):
        super().__init__()
        self._directory = posixpath.join(output, "reconciliation")
        self._num_shards = num_shards

    def expand(self, reconciled):
        (
            reconciled.elements
            | "ToRecords" >> beam.Map(lambda c: c.to_record()).with_input_types(ElementComparison)
            | "WriteElements"
            >> WriteJsonLines(posixpath.join(self._directory, "elements"), self._num_shards)
        )
        return reconciled.summary | "WriteSummary" >> beam.Map(
            _write_summary_files, self._directory
        )
