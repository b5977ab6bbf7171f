"""Reconcile: rescore sampled elements alone, compare with their batched scores, summarise.

The plan, chosen for cost: the sampled elements (``Scored.sampled``, decided in Preprocess by a
stable hash of the key under the effective share) leave the scoring step still holding their
preprocessed tensor and bytes; the very next, fused step rescores each alone with the same
shared model on the same worker. Nothing is shuffled but the small comparison records, and no
element's score vectors outlive its own comparison (the summary keeps one, to tell a model
whose output is constant). The
extra model work is about the share x (cost of a batch-of-1 call / per-row cost in a batch).

With ``pad_batches`` the reference is the same padded shape among other neighbours at other
positions: sampled elements are regrouped half a batch at a time, in reverse order, with zeros
filling the rest. Even when every element is sampled, no element keeps its batch neighbours or
its position, and demanding bitwise identity costs about ``2 x share`` extra model work, not
``batch_size`` times more.

The diagnosis probes and the layer profile run once a job, on the elements that come first
in key order (``transforms.score.probe_chosen``): rescoring only offers candidates for them, so
neither which elements are probed nor how often depends on how a runner cuts its bundles.
With ``--sweep_batch_sizes`` rescoring also hands each compared element to
``SweepBatchSizes`` (``transforms.score.sweep``), which groups the sample by a hash of the key
(one shuffle of the sample's tensors) so that its batches, too, are the data's, not the bundles'.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from transforms.core import metric_names, probe_choice, reconciliation_summary, tolerance
from transforms.core.comparisons import SINGLE, ElementComparison
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.core.model_reading import call_model
from transforms.core.probe_choice import ProbeCandidate
from transforms.core.records import Scored, error_detail
from transforms.core.thumbnails import with_thumbnail
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics
from transforms.score.probe_chosen import ProbeChosenElements
from transforms.score.sweep import SweepBatchSizes, SweepCandidate

CANDIDATES = "candidates"
SWEEP = "sweep"


@beam.typehints.with_output_types(
    ElementComparison, **{CANDIDATES: ProbeCandidate, SWEEP: SweepCandidate}
)
class RescoreDoFn(beam.DoFn):
    """Sampled Scored -> ElementComparison (main), ProbeCandidate and, with ``sweep``, each
    compared element's SweepCandidate (tagged) for ``SweepBatchSizes``.

    Thumbnails are made only for comparisons that enter this bundle's own worst few, so their
    cost stays a handful per bundle however large the sample; probe candidates are offered
    only while they come first of their kind in the bundle. All per-bundle state is set in
    start_bundle(), so a bundle that Beam retries makes the same records again, whatever this
    instance processed before.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        batch_size: int,
        pad_batches: bool,
        sweep: bool,
        atol: float,
        rtol: float,
    ):
        self._config = model_config
        self._batch_size = batch_size
        self._pad = pad_batches
        self._sweep = sweep
        self._atol, self._rtol = atol, rtol
        self._compared = Metrics.counter(METRICS_NAMESPACE, metric_names.RECONCILED)
        self._mismatches = Metrics.counter(METRICS_NAMESPACE, metric_names.RECONCILE_MISMATCHES)

    def setup(self):
        self._load_metrics = ModelLoadMetrics()
        self._model = self._config.acquire(self._load_metrics)  # the one RunInference uses

    def start_bundle(self):
        self._offered = probe_choice.FirstSoFar()
        self._pending: list[Scored] = []  # awaiting a padded reference call
        self._worst_ranks: list[tuple] = []

    def _score(self, tensors: list[np.ndarray], pad_size: int | None) -> np.ndarray:
        return call_model(self._model, np.stack(tensors), pad_size)

    def _references(self, tensors: list[np.ndarray], pad_size: int | None) -> list:
        """Each tensor's reference row, or the exception the model raised on it: a failing
        call is retried row by row, so an image the model refuses costs no other image its
        comparison (as scoring isolates a failing batch's elements)."""
        try:
            return list(self._score(tensors, pad_size))
        except Exception as e:  # noqa: BLE001 - a model failure is this comparison's record
            if len(tensors) == 1:
                return [e]
            return [self._references([t], pad_size)[0] for t in tensors]

    def process(self, scored: Scored):
        self._load_metrics.update_metrics_with_cache()
        if self._pad:
            self._pending.append(scored)
            if len(self._pending) == max(1, self._batch_size // 2):
                yield from self._flush_pending()
        else:
            yield from self._compare(scored, self._references([scored.tensor], None)[0])

    def _flush_pending(self):
        pending, self._pending = self._pending[::-1], []
        if pending:
            references = self._references([s.tensor for s in pending], self._batch_size)
            for scored, reference in zip(pending, references, strict=True):
                yield from self._compare(scored, reference)

    def _with_thumbnail(self, c: ElementComparison, raw: bytes | None) -> ElementComparison:
        return with_thumbnail(self._worst_ranks, c, raw)

    def _compare(self, scored: Scored, reference: np.ndarray | Exception):
        if isinstance(reference, Exception):
            yield self._failed(scored, scored.batch_size, scored.position, reference)
            return
        comparison = tolerance.compare_scores(scored.scores, reference, self._atol, self._rtol)
        self._compared.inc()
        agreed = comparison["status"] in (tolerance.IDENTICAL, tolerance.WITHIN_TOLERANCE)
        if not agreed:
            self._mismatches.inc()
        kinds = [probe_choice.FIRST]
        if comparison["status"] == tolerance.MISMATCH:
            kinds.append(probe_choice.MISMATCH)
        elif agreed:
            kinds.append(probe_choice.CLEAN)
        yield from self._candidates(scored, reference, kinds)
        c = ElementComparison.of(
            scored.uri,
            scored.batch_size,
            scored.position,
            SINGLE,
            comparison,
            batch_scores=scored.scores,
            key=scored.key,
        )
        yield self._with_thumbnail(c, scored.raw)
        if self._sweep:
            candidate = SweepCandidate(
                scored.key, scored.uri, scored.tensor, scored.scores, reference, scored.raw
            )
            yield beam.pvalue.TaggedOutput(SWEEP, candidate)

    def _failed(
        self, scored: Scored, size: int, position: int, error: Exception
    ) -> ElementComparison:
        """The comparison whose reference call raised: status ``reference_error``, counted."""
        self._compared.inc()
        self._mismatches.inc()
        c = ElementComparison.of(
            scored.uri,
            size,
            position,
            SINGLE,
            tolerance.failed_reference(scored.scores),
            key=scored.key,
            error=f"model raised {type(error).__name__}: {error_detail(error)}",
        )
        return self._with_thumbnail(c, scored.raw)

    def _candidates(self, scored: Scored, reference: np.ndarray, kinds: list[str]):
        """Offers ``scored`` for the probes of ``kinds`` where it comes first in this bundle."""
        for kind in kinds:
            if self._offered.offer(kind, scored.key):
                candidate = ProbeCandidate(
                    kind,
                    scored.key,
                    scored.tensor,
                    scored.scores,
                    scored.batch_size,
                    scored.position,
                    # Padded, the reference was a regrouped call, which the probes redo.
                    reference=None if self._pad else reference,
                )
                yield beam.pvalue.TaggedOutput(CANDIDATES, candidate)

    def finish_bundle(self):
        for record in self._flush_pending():
            if isinstance(record, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(
                    record.tag, GlobalWindows.windowed_value(record.value)
                )
            else:
                yield GlobalWindows.windowed_value(record)


class SummarizeReconciliation(beam.CombineFn):
    """ElementComparison, ProbeResult and SweepTiming -> one ``reconciliation_summary.Accumulator``
    (mergeable, bounded: counts, histograms, the worst few; no element lists)."""

    def __init__(self, atol: float, rtol: float):
        self._atol, self._rtol = atol, rtol

    def create_accumulator(self):
        return reconciliation_summary.Accumulator()

    def add_input(self, acc, item):
        return reconciliation_summary.accumulate(acc, item, self._atol, self._rtol)

    def merge_accumulators(self, accumulators):
        return reconciliation_summary.merge(accumulators, self._atol, self._rtol)

    def extract_output(self, acc):
        return acc


class ReconcileResult(NamedTuple):
    """Reconcile's outputs (PCollections)."""

    elements: beam.PCollection  # ElementComparison, one per comparison made
    summary: beam.PCollection  # singleton: the summary dict (summary.json, with thumbnails)


@beam.typehints.with_input_types(Scored)
class Reconcile(beam.PTransform):
    """Rescores sampled Scored elements alone and summarises the differences.

    Args:
      model_config: the same model the job scores with (shared, loaded once per process).
      batch_size, pad_batches: how the job scored, so the reference matches it.
      sweep_sizes: also score the sample at these batch sizes.
      settings: the tolerance, sample settings and model warnings the summary reports.
      matched: singleton PCollection of the job's matched count (a side input), which the
        guarantee is stated over; None reports no count.
      skipped: singleton PCollection of the inputs ``--skip_existing`` left out (a side
        input): the sample's share was of matched - skipped; None means none were.
      extra_elements: optional PCollection of element records from other references
        (the serving path), summarised alongside, and their ProbeCandidates.

    The probes (``ProbeChosenElements``) run once a job: the repeat probe (a batch-of-1 call)
    on the first compared element in key order, the batch-sized probes on the first mismatch.

    Returns:
      A ``ReconcileResult``: ``elements``, the ElementComparison records, and ``summary``,
      a single summary dict.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        pad_batches: bool,
        sweep_sizes: tuple[int, ...],
        settings: reconciliation_summary.SummarySettings,
        matched=None,
        extra_elements=None,
        skipped=None,
    ):
        super().__init__()
        self._rescore = RescoreDoFn(
            model_config,
            settings.batch_size,
            pad_batches,
            bool(sweep_sizes),
            settings.atol,
            settings.rtol,
        )
        self._sweep = None
        if sweep_sizes:
            self._sweep = SweepBatchSizes(
                model_config,
                sweep_sizes,
                pad_batches,
                settings.atol,
                settings.rtol,
                settings.fraction,
                settings.reconcile_min,
                matched=matched,
                skipped=skipped,
            )
        self._probe = ProbeChosenElements(
            model_config, settings.batch_size, pad_batches, settings.atol, settings.rtol
        )
        self._settings = settings
        self._summarize = SummarizeReconciliation(settings.atol, settings.rtol)
        self._matched = matched
        self._skipped = skipped
        self._extra = extra_elements

    def expand(self, scored):
        rescored = (
            scored
            | "KeepSampled" >> beam.Filter(lambda s: s.sampled)
            | "RescoreAlone"
            >> beam.ParDo(self._rescore).with_outputs(CANDIDATES, SWEEP, main="elements")
        )
        elements, candidates = rescored.elements, rescored[CANDIDATES]
        timings = []
        if self._sweep is not None:
            swept = rescored[SWEEP] | "SweepBatchSizes" >> self._sweep
            elements = (elements, swept.elements) | "MergeSweep" >> beam.Flatten()
            timings.append(swept.timings)
        if self._extra is not None:
            # Other references may send probe candidates along: probed, not written.
            extra = self._extra | "SplitReferenceCandidates" >> beam.Partition(
                lambda r, _: int(isinstance(r, ProbeCandidate)), 2
            )
            elements = (elements, extra[0]) | "MergeReferences" >> beam.Flatten()
            candidates = (candidates, extra[1]) | "MergeCandidates" >> beam.Flatten()
        probes = candidates | "ProbeChosenElements" >> self._probe
        summary = (
            (elements, probes, *timings)
            | "GatherRecords" >> beam.Flatten()
            | "Summarize" >> beam.CombineGlobally(self._summarize)
        )
        # The guarantee is about every prediction: count them (a combine, no shuffle of data).
        predictions = scored | "CountPredictions" >> beam.combiners.Count.Globally()
        # Predictions of images whose EXIF orientation TensorFlow's decoder ignored.
        oriented = (
            scored
            | "KeepExifOriented" >> beam.Filter(lambda s: s.exif_orientation != 1)
            | "CountExifOriented" >> beam.combiners.Count.Globally()
        )
        side = {
            "predictions": beam.pvalue.AsSingleton(predictions),
            "exif_oriented": beam.pvalue.AsSingleton(oriented),
        }
        if self._matched is not None:
            side["matched"] = beam.pvalue.AsSingleton(self._matched)
        if self._skipped is not None:
            side["skipped"] = beam.pvalue.AsSingleton(self._skipped)
        summary = summary | "StateGuarantee" >> beam.Map(
            reconciliation_summary.summarize, self._settings, **side
        )
        return ReconcileResult(elements, summary)
