r"""SkipExisting: splits elements into those still to score and those an earlier run already
scored with the same model.

    elements (key, value) --+
                            +-> JoinKeys (CoGroupByKey) -> Split -> unscored (key, value)
    earlier runs' keys -----+   (same model digest only)       \-> skipped (key, value),
                                                                     Metrics "skipped"

An anti-join that scales like the job: the earlier keys are a PCollection joined by key, never
a set in one process. Generic on (key, value), and meant for values without image bytes (the
join shuffles them): the files input joins (URI, name) before reading a byte; shard inputs join
(key, record location) from their keys pass, and skip the records when reading.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.core import metric_names
from transforms.core.common import is_local
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.io.read_predictions import ReadPredictions, first_record, run_state_note
from transforms.score.progress import ProgressHook


def digest_notes(runs: list[str] | tuple[str, ...], model_digest: str) -> list[str]:
    """One line for each earlier run whose (first) prediction comes from another model, or
    whose files were keyed by relative paths (runs before keys were absolute): its keys match
    none of this job's, and are scored again; and for each whose run.json does not say it
    finished (its complete records are used). Reads one record and the run.json per run.

    Raises:
      transforms.io.read_predictions.RunReadError: a path that holds no run.
    """
    notes = []
    for run in runs:
        record = first_record(run)
        state = run_state_note("--skip_existing", run)
        if state:
            notes.append(state)
        if record is not None and record.get("model_digest") != model_digest:
            notes.append(
                f"--skip_existing {run}: its predictions come from model digest "
                f"{record.get('model_digest')}, not {model_digest}; scoring its keys again"
            )
        elif record is not None and _relative_file_key(record):
            notes.append(
                f"--skip_existing {run}: its keys are relative paths (written before keys were "
                "absolute), which match no key of this job; scoring its images again"
            )
    return notes


def _relative_file_key(record: dict) -> bool:
    key = record.get("key") or ""
    return key == record.get("uri") and is_local(key) and not key.startswith("/")


SKIPPED = "skipped"


class _SplitDoFn(beam.DoFn):
    def __init__(self, progress: ProgressHook | None):
        self._skipped = Metrics.counter(METRICS_NAMESPACE, metric_names.SKIPPED)
        self._progress = progress

    def process(self, joined):
        key, grouped = joined
        scored = any(True for _ in grouped["scored"])
        for value in grouped["elements"]:
            if scored:
                self._skipped.inc()
                if self._progress is not None:
                    self._progress.add(skipped=1)
                yield beam.pvalue.TaggedOutput(SKIPPED, (key, value))
            else:
                yield key, value


class SkipResult(NamedTuple):
    """SkipExisting's outputs (PCollections)."""

    unscored: beam.PCollection  # (key, value) elements still to score
    skipped: beam.PCollection  # (key, value) elements an earlier run scored
    unreadable: beam.PCollection  # the shard of each earlier JSONL line that holds no record


@beam.typehints.with_input_types(tuple[str, Any])
class SkipExisting(beam.PTransform):
    """Splits (key, value) elements by whether their key has a prediction with
    ``model_digest`` in one of ``runs``.

    Args:
      runs: earlier outputs of the scoring job (any output format).
      model_digest: the digest of the model this job scores with; predictions of other models
        do not count as scored.
      progress: where to report skipped elements (a local run's progress line), or None.

    Returns:
      A ``SkipResult``: ``unscored`` (the (key, value) elements still to score), ``skipped``
      (the others; counted, so run.json accounts matched == scored + errors + skipped) and
      ``unreadable`` (earlier runs' lines that hold no record, whose keys are scored again).
    """

    def __init__(
        self,
        runs: list[str] | tuple[str, ...],
        model_digest: str,
        progress: ProgressHook | None = None,
    ):
        super().__init__()
        self._progress = progress
        if not runs:
            raise ValueError("SkipExisting needs at least one earlier run")
        self._runs = list(runs)
        self._digest = model_digest

    def expand(self, elements):
        digest = self._digest
        # One read for all runs (a transform per run made 500 runs too deep a graph); a line
        # that holds no record is counted there (unreadable_prediction_lines) and its key
        # scored again.
        earlier = elements.pipeline | "ReadPredictions" >> ReadPredictions(
            self._runs, columns=["key", "model_digest"]
        )
        scored_keys = (
            earlier.records
            | "KeepSameModel" >> beam.Filter(lambda r: r.get("model_digest") == digest)
            | "TakeKeys" >> beam.Map(lambda r: (r["key"], None))
        )
        split = (
            {"elements": elements, "scored": scored_keys}
            | "JoinKeys" >> beam.CoGroupByKey()
            | "SplitScored"
            >> beam.ParDo(_SplitDoFn(self._progress)).with_outputs(SKIPPED, main="unscored")
        )
        return SkipResult(split.unscored, split[SKIPPED], earlier.unreadable)
