"""ProbeChosenElements: the diagnosis probes and layer profiles, on elements the data chooses.

The rescoring steps offer candidates (``transforms.core.probe_choice``: a bundle offers an
element only while it comes first of its kind in that bundle); a global combine keeps the
first of each kind, and one step runs the probes on them with the job's loaded model:

- the first compared element gets the repeat probe (one batch-of-1 call);
- the first single-reference mismatch gets all three probes (two batch-sized calls) and a
  layer profile; a job with no such mismatch profiles its first agreeing element instead
  (the noise profile), unless a serving mismatch is profiled;
- the first serving-reference mismatch gets a profile against the serving path's input.

So a job runs each probe at most once, on the same elements however a runner cuts its bundles.
The candidates' tensors cross one combine: a few per bundle, not the sample's.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from transforms.core import diagnosis, layer_probe
from transforms.core.comparisons import SERVING, SINGLE, LayerProfile, ProbeResult
from transforms.core.model_reading import call_model
from transforms.core.probe_choice import (
    CLEAN,
    FIRST,
    MISMATCH,
    SERVING_MISMATCH,
    ProbeCandidate,
    keep_first,
)
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics


class ChooseProbeElements(beam.CombineFn):
    """ProbeCandidate -> {kind: the candidate that comes first of its kind}."""

    def create_accumulator(self):
        return {}

    def add_input(self, chosen, candidate: ProbeCandidate):
        keep_first(chosen, candidate)
        return chosen

    def merge_accumulators(self, accumulators):
        merged: dict[str, ProbeCandidate] = {}
        for chosen in accumulators:
            for candidate in chosen.values():
                keep_first(merged, candidate)
        return merged

    def extract_output(self, chosen):
        return chosen


class _RunProbesDoFn(beam.DoFn):
    """{kind: ProbeCandidate} -> ProbeResult and LayerProfile records."""

    def __init__(
        self, model_config: ModelConfig, batch_size: int, pad: bool, atol: float, rtol: float
    ):
        self._config = model_config
        self._batch_size = batch_size
        self._pad = pad
        self._atol, self._rtol = atol, rtol

    def setup(self):
        self._load_metrics = ModelLoadMetrics()
        self._model = self._config.acquire(self._load_metrics)  # the one RunInference uses

    def process(self, chosen: dict[str, ProbeCandidate]):
        self._load_metrics.update_metrics_with_cache()
        first, mismatch = chosen.get(FIRST), chosen.get(MISMATCH)
        serving = chosen.get(SERVING_MISMATCH)
        if mismatch is not None:
            yield from self._profile(mismatch, layer_probe.alone(mismatch.tensor, self._pad_size))
            yield from self._probes(mismatch, batch_probes=True)
        if first is not None and (mismatch is None or first.key != mismatch.key):
            yield from self._probes(first, batch_probes=False)
        clean = chosen.get(CLEAN)
        if mismatch is None and serving is None and clean is not None:
            alone = layer_probe.alone(clean.tensor, self._pad_size)
            yield from self._profile(clean, alone, failed=False)
        if serving is not None:
            yield from self._profile(serving, serving.serving_input[None], reference=SERVING)

    @property
    def _pad_size(self) -> int | None:
        return self._batch_size if self._pad else None

    def _probes(self, x: ProbeCandidate, batch_probes: bool):
        # x's own batch is a call of batch_size rows among other images when it was full:
        # the probes reuse it rather than score x among made-up neighbours.
        own_batch = x.scores if x.batch_size == self._batch_size > 1 else None
        try:
            yield diagnosis.run_probes(
                # In padded mode every call, probes included, has the padded shape.
                lambda batch: call_model(self._model, np.asarray(batch), self._pad_size),
                x.tensor,
                self._batch_size,
                self._atol,
                self._rtol,
                alone=x.reference,  # None where it was a padded regrouped call: scored again
                among_images=own_batch,
                batch_probes=batch_probes,
            )
        except Exception:  # noqa: BLE001 - a probe the model refuses proves nothing; no record
            return

    def _profile(self, x: ProbeCandidate, reference_input, reference=SINGLE, failed=True):
        """Where x's row in (a stand-in for) its batch and its reference part ways."""
        profile: LayerProfile | None = layer_probe.profile_model(
            self._model,
            layer_probe.in_its_batch(x.tensor, x.position, x.batch_size, self._pad_size),
            x.position,
            reference_input,
            0,
            self._atol,
            self._rtol,
            reference,
            x.key,
            failed=failed,
        )
        if profile is not None:
            yield profile


@beam.typehints.with_input_types(ProbeCandidate)
@beam.typehints.with_output_types(ProbeResult | LayerProfile)
class ProbeChosenElements(beam.PTransform):
    """ProbeCandidates -> the ProbeResult and LayerProfile records of the chosen elements.

    Args:
      model_config: the job's model (shared, loaded once per process).
      batch_size, pad_batches: how the job scored, so the probes call the model as it did.
      atol, rtol: the tolerance the probes judge by.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        batch_size: int,
        pad_batches: bool,
        atol: float,
        rtol: float,
    ):
        super().__init__()
        self._dofn = _RunProbesDoFn(model_config, batch_size, pad_batches, atol, rtol)

    def expand(self, candidates):
        return (
            candidates
            | "ChooseFirstOfEachKind" >> beam.CombineGlobally(ChooseProbeElements())
            | "RunProbes" >> beam.ParDo(self._dofn)
        )
