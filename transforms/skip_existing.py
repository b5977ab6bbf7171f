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

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.common import METRICS_NAMESPACE
from transforms.progress import ProgressHook
from transforms.read_predictions import ReadPredictions, first_record, run_state_note


def digest_notes(runs: list[str] | tuple[str, ...], model_digest: str) -> list[str]:
    """One line for each earlier run whose (first) prediction comes from another model (its keys
    are scored again), and for each whose run.json does not say it finished (its complete
    records are used). Reads one record and the run.json per run.

    Raises:
      transforms.read_predictions.RunReadError: a path that holds no run.
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
    return notes


SKIPPED = "skipped"


class _SplitDoFn(beam.DoFn):
    def __init__(self, progress: ProgressHook | None):
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "skipped")
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


class SkipExisting(beam.PTransform):
    """Splits (key, value) elements by whether their key has a prediction with
    ``model_digest`` in one of ``runs``.

    Args:
      runs: earlier outputs of the scoring job (any output format).
      model_digest: the digest of the model this job scores with; predictions of other models
        do not count as scored.
      progress: where to report skipped elements (a local run's progress line), or None.

    Returns:
      Outputs ``unscored`` (the main one: the (key, value) elements still to score) and
      ``skipped`` (the others). Each skipped element increments the ``skipped`` counter, so
      run.json accounts matched == scored + errors + skipped.
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
        scored = [
            elements.pipeline
            | f"ReadPredictions[{i}]" >> ReadPredictions(run, columns=["key", "model_digest"])
            | f"KeepSameModel[{i}]" >> beam.Filter(lambda r: r.get("model_digest") == digest)
            | f"TakeKeys[{i}]" >> beam.Map(lambda r: (r["key"], None))
            for i, run in enumerate(self._runs)
        ]
        scored_keys = scored[0] if len(scored) == 1 else scored | "MergeRuns" >> beam.Flatten()
        return (
            {"elements": elements, "scored": scored_keys}
            | "JoinKeys" >> beam.CoGroupByKey()
            | "SplitScored"
            >> beam.ParDo(_SplitDoFn(self._progress)).with_outputs(SKIPPED, main="unscored")
        )
