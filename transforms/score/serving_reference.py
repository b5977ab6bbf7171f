"""The serving reference: sampled raw bytes scored exactly as TF Serving would, via tfx-bsl.

Each sampled element's original bytes are wrapped in a ``tf.train.Example`` (bytes feature
``image``) and run, one at a time, through the bundle's ``serving_default`` signature by
tfx-bsl's in-process SavedModel handler (TF1 session loader, as TF Serving loads it) under
Beam's ``RunInference``. tfx-bsl's own public ``RunInference`` ignores batch parameters, so its
``CreateModelHandler`` is used with Beam's. Comparing with the batch score exposes skew between
the batch preprocessing and the one deployed online.
"""

from __future__ import annotations

import posixpath

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, RunInference
from tfx_bsl.public.beam.run_inference import CreateModelHandler
from tfx_bsl.public.proto import model_spec_pb2

from transforms.core import probe_choice, tolerance
from transforms.core.common import BUNDLE_SPEC_ASSET, IMAGE_FEATURE, SERVING_SIGNATURE
from transforms.core.comparisons import SERVING, ElementComparison
from transforms.core.model_reading import make_deterministic
from transforms.core.preprocess import PreprocessSpec, make_preprocess_fn
from transforms.core.probe_choice import ProbeCandidate
from transforms.core.records import Scored, error_detail
from transforms.core.thumbnails import with_thumbnail


def image_example(image_bytes: bytes) -> bytes:
    """A serialized tf.train.Example as an online client sends it: bytes feature ``image``."""
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes]))
    example = tf.train.Example(features=tf.train.Features(feature={IMAGE_FEATURE: feature}))
    return example.SerializeToString()


def inference_spec(bundle: str, batch_size: int = 1) -> model_spec_pb2.InferenceSpecType:
    return model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(
            model_path=bundle, signature_name=[SERVING_SIGNATURE]
        ),
        batch_parameters=model_spec_pb2.BatchParameters(
            min_batch_size=batch_size, max_batch_size=batch_size
        ),
    )


def scores_from_log(prediction_log) -> np.ndarray:
    """The ``scores`` row of a tfx-bsl PredictionLog (batch of one)."""
    return tf.make_ndarray(prediction_log.predict_log.response.outputs["scores"])[0]


def read_bundle_spec(bundle: str) -> PreprocessSpec:
    with FileSystems.open(posixpath.join(bundle, BUNDLE_SPEC_ASSET)) as f:
        return PreprocessSpec.from_json(f.read().decode("utf-8"))


class ServingModelHandler(ModelHandler):
    """tfx-bsl's SavedModel handler, created on the worker, scoring batches of one.

    tfx-bsl reads the model's signatures when its handler is constructed; creating it in
    ``load_model`` keeps job construction free of file access (Dataflow builds graphs offline).
    A failing element becomes its exception instead of failing the job.
    """

    def __init__(self, bundle: str, deterministic: bool = False):
        super().__init__()
        self._bundle = bundle
        self._deterministic = deterministic
        self._inner = None

    def _handler(self):
        if self._inner is None:
            self._inner = CreateModelHandler(inference_spec(self._bundle))
        return self._inner

    def load_model(self):
        if self._deterministic:
            make_deterministic()  # per process: this worker too (``--deterministic``)
        return self._handler().load_model()

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}

    def run_inference(self, batch, model, inference_args=None):
        results = []
        for key, example in batch:
            try:
                (log,) = self._handler().run_inference([example], model)
                results.append((key, scores_from_log(log)))
            except Exception as e:  # noqa: BLE001 - a serving failure is this element's result
                results.append((key, e))
        return results


class _CompareWithServingDoFn(beam.DoFn):
    def __init__(self, bundle: str, batch_spec: PreprocessSpec, atol, rtol):
        self._bundle = bundle
        self._batch_spec = batch_spec
        self._atol, self._rtol = atol, rtol

    def setup(self):
        self._serving_spec = read_bundle_spec(self._bundle)
        self._serving_preprocess = make_preprocess_fn(self._serving_spec)

    def start_bundle(self):
        self._offered = probe_choice.FirstSoFar()
        self._worst_ranks: list[tuple] = []

    def process(self, element):
        scored, outcome = element
        if isinstance(outcome, Exception):
            comparison = tolerance.failed_reference(scored.scores)
            error = f"{type(outcome).__name__}: {error_detail(outcome)}"
        else:
            comparison = tolerance.compare_scores(scored.scores, outcome, self._atol, self._rtol)
            error = None
        serving_input = self._serving_input(scored)
        input_diff = (
            None if serving_input is None else float(np.max(np.abs(serving_input - scored.tensor)))
        )
        result = ElementComparison.of(
            scored.uri,
            scored.batch_size,
            scored.position,
            SERVING,
            comparison,
            serving_error=error,
            key=scored.key,
            input_max_abs_diff=input_diff,
            batch_preprocessing=self._batch_spec.to_json(),
            serving_preprocessing=self._serving_spec.to_json(),
        )
        # The report's worst serving rows get their image too, as the single reference's do.
        yield with_thumbnail(self._worst_ranks, result, scored.raw)
        mismatch = comparison["status"] == tolerance.MISMATCH and input_diff is not None
        if mismatch and self._offered.offer(probe_choice.SERVING_MISMATCH, scored.key):
            # Offered for a layer profile against the serving input; Reconcile's
            # ProbeChosenElements profiles the job's first serving mismatch in key order.
            yield ProbeCandidate(
                probe_choice.SERVING_MISMATCH,
                scored.key,
                scored.tensor,
                scored.scores,
                scored.batch_size,
                scored.position,
                serving_input=serving_input,
            )

    def _serving_input(self, scored) -> np.ndarray | None:
        """The serving path's model input, to set beside the batch path's (None where the
        serving preprocessing fails on these bytes, its score says so, or gives another
        shape)."""
        try:
            serving_input = self._serving_preprocess(tf.constant(scored.raw)).numpy()
        except Exception:  # noqa: BLE001 - the comparison stands without this figure
            return None
        return serving_input if serving_input.shape == scored.tensor.shape else None


@beam.typehints.with_input_types(Scored)
@beam.typehints.with_output_types(ElementComparison | ProbeCandidate)
class ServingReference(beam.PTransform):
    """Sampled Scored elements (holding raw bytes) -> ``reference: serving`` ElementComparisons.

    Args:
      bundle: the serving model bundle (often the one deployed online).
      batch_spec: the batch path's PreprocessSpec.
      atol, rtol: tolerance for ``within_tolerance``.
      deterministic: seed and make deterministic each worker that loads the bundle.

    Returns:
      The ElementComparisons and, in the same output, ``ProbeCandidate``s of serving
      mismatches for Reconcile's layer profile (a few per bundle).
    """

    def __init__(
        self,
        bundle: str,
        batch_spec: PreprocessSpec,
        atol: float,
        rtol: float,
        deterministic: bool = False,
    ):
        super().__init__()
        self._bundle = bundle
        self._deterministic = deterministic
        self._batch_spec = batch_spec
        self._atol, self._rtol = atol, rtol

    def expand(self, scored):
        return (
            scored
            | "KeepSampledBytes" >> beam.Filter(lambda s: s.sampled and s.raw is not None)
            | "ToExample" >> beam.Map(lambda s: (s, image_example(s.raw)))
            | "RunServingSignature"
            >> RunInference(ServingModelHandler(self._bundle, self._deterministic))
            | "CompareWithServing"
            >> beam.ParDo(
                _CompareWithServingDoFn(self._bundle, self._batch_spec, self._atol, self._rtol)
            )
        )
