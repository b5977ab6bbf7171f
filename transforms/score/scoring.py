"""Score: Beam's RunInference at an exactly honoured batch size, with provenance.

Every prediction records the batch it was scored in (real rows, a batch id derived from its
members, its position). A batch that makes the model raise is split in halves until the
failing elements are isolated; they become ``model_error`` dead letters and the rest are scored
(Beam's own handlers fail the whole batch: apache/beam#23835).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from transforms.core import metric_names, records
from transforms.core.common import ERRORS
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.core.model_reading import ImageModel, call_model
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics
from transforms.score.progress import ProgressHook


def score_isolating_failures(
    score: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, offset: int = 0
) -> list[tuple[int, int, np.ndarray | Exception]]:
    """Scores a batch; on failure bisects until each failure is a single element.

    Returns:
      One (call_start, call_size, scores row or exception) per element, in order, where
      call_start/call_size describe the model call that produced it.
    """
    try:
        scores = score(batch)
        return [(offset, len(batch), row) for row in scores]
    except Exception as e:  # noqa: BLE001 - a model failure is data: isolate it
        if len(batch) == 1:
            return [(offset, 1, e)]
        half = len(batch) // 2
        return score_isolating_failures(score, batch[:half], offset) + score_isolating_failures(
            score, batch[half:], offset + half
        )


class ImageModelHandler(ModelHandler):
    """RunInference handler: Preprocessed -> Scored, batches of exactly ``batch_size``.

    Args:
      model_config: where the model is and how it is shared: once per worker process, or
        ``model_copies`` per worker, shared by its processes (Beam's own mechanism).
      batch_size: rows per model call (a bundle's last batch may be smaller; ReadImages
        delivers whole batches of names, so that is the job's last one).
      pad_batches: zero-pad partial batches to ``batch_size`` so every call has one shape.

    Elements in the reconciliation sample (``Preprocessed.sampled``, marked by
    ``SampleForReconciliation``) keep their tensor and bytes for rescoring; no other does.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        batch_size: int,
        pad_batches: bool = False,
    ):
        super().__init__(model_copies=model_config.model_copies)
        self._config = model_config
        self._batch_size = batch_size
        self._pad_batches = pad_batches
        # Each RunInference DoFn holds its own unpickled copy of the handler, so of this too.
        self._load_metrics = ModelLoadMetrics()

    def load_model(self) -> ImageModel:
        return self._config.load(self._load_metrics)

    @property
    def model_identifier(self) -> str:
        """RunInference's tag for the model, under which the other DoFns find its copies."""
        return self._config.identifier

    def batch_elements_kwargs(self):
        # min == max turns BatchElements' adaptive sizing off.
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}

    def get_num_bytes(self, batch: Sequence[records.Preprocessed]) -> int:
        return sum(element.tensor.nbytes for element in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE

    def run_inference(self, batch, model, inference_args=None) -> list[records.Scored]:
        self._load_metrics.update_metrics_with_cache()
        stacked = np.stack([element.tensor for element in batch])
        pad_size = self._batch_size if self._pad_batches else None
        outcomes = score_isolating_failures(lambda b: call_model(model, b, pad_size), stacked)
        results = []
        # One id per model call, not per element: hashing every member list for every element
        # grows with the square of the batch size.
        batch_ids: dict[tuple[int, int], str] = {}
        for index, element in enumerate(batch):
            start, size, outcome = outcomes[index]
            if (start, size) not in batch_ids:
                members = [e.key for e in batch[start : start + size]]
                batch_ids[start, size] = records.batch_id_for(members)
            scored = records.Scored(
                uri=element.uri,
                key=element.key,
                scores=None,
                batch_size=size,
                batch_id=batch_ids[start, size],
                position=index - start,
                exif_orientation=element.exif_orientation,
            )
            if isinstance(outcome, Exception):
                scored.error = records.ImageError(
                    "score",
                    records.MODEL_ERROR,
                    f"model raised {type(outcome).__name__}: {records.error_detail(outcome)}",
                )
            else:
                scored.scores = outcome
                if element.sampled:
                    scored.tensor, scored.raw, scored.sampled = element.tensor, element.raw, True
            results.append(scored)
        return results


# Its errors (dicts) keep no hint: ``dict`` would change their coder (FastPrimitivesCoder's).
@beam.typehints.with_output_types(records.Scored)
class _RouteOutcomesDoFn(beam.DoFn):
    def __init__(self, progress: ProgressHook | None):
        self._progress = progress
        self._scored = Metrics.counter(METRICS_NAMESPACE, metric_names.SCORED)
        self._model_errors = Metrics.counter(METRICS_NAMESPACE, metric_names.MODEL_ERRORS)
        self._non_finite = Metrics.counter(METRICS_NAMESPACE, metric_names.NON_FINITE_SCORES)

    def process(self, scored: records.Scored):
        if scored.error is not None:
            self._model_errors.inc()
            yield beam.pvalue.TaggedOutput(ERRORS, scored.error.record(scored.uri, scored.key))
            return
        self._scored.inc()
        if self._progress is not None:
            self._progress.add(scored=1)
        if not np.all(np.isfinite(scored.scores)):
            self._non_finite.inc()
        yield scored


class ScoreResult(NamedTuple):
    """Score's outputs (PCollections)."""

    scored: beam.PCollection  # Scored
    errors: beam.PCollection  # model_error records (dicts)


@beam.typehints.with_input_types(records.Preprocessed)
class Score(beam.PTransform):
    """Scores Preprocessed elements with RunInference; model failures become dead letters.

    Args:
      handler: an ImageModelHandler.
      progress: where to report scored elements (a local run's progress line), or None.

    Returns:
      A ``ScoreResult``: ``scored`` of Scored and ``errors`` of error records.
    """

    def __init__(self, handler: ImageModelHandler, progress: ProgressHook | None = None):
        super().__init__()
        self._handler = handler
        self._progress = progress

    def expand(self, images):
        routed = (
            images
            | "RunInference"
            >> RunInference(self._handler, model_identifier=self._handler.model_identifier)
            | "RouteOutcomes"
            >> beam.ParDo(_RouteOutcomesDoFn(self._progress)).with_outputs(ERRORS, main="scored")
        )
        return ScoreResult(routed.scored, routed[ERRORS])
