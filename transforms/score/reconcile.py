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

Each bundle's first mismatch also gets a layer profile (``transforms.core.layer_probe``): where in
the network its batched row and its reference part ways; a worker instance whose bundles all
agree profiles one agreeing element instead, the noise profile of a clean job.
"""

from __future__ import annotations

import base64
import heapq
import io
import time

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows
from PIL import Image

from transforms.core import diagnosis, layer_probe, reconciliation_summary, tolerance
from transforms.core.common import METRICS_NAMESPACE
from transforms.core.comparisons import SINGLE, ElementComparison, LayerProfile, SweepTiming
from transforms.core.model_reading import call_model
from transforms.core.records import Scored, error_detail
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics

PROBES = "probes"
TIMINGS = "timings"
THUMBNAIL_PIXELS = 96  # the longer side of a report thumbnail


def thumbnail(raw: bytes | None) -> str | None:
    """A small PNG data URI of an encoded image (bounded size), or None if it cannot be made."""
    if not raw:
        return None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.draft("RGB", (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))  # JPEG: decode small
            small = image.convert("RGB")
            small.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            small.save(buffer, "PNG", optimize=True)
    except Exception:  # noqa: BLE001 - a thumbnail is decoration; the comparison stands without
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def with_thumbnail(worst_ranks: list[tuple], c: ElementComparison, raw: bytes | None):
    """``c`` with a thumbnail of ``raw`` when it ranks among the bundle's worst so far (the
    heap ``worst_ranks``), so a bundle makes a handful of thumbnails, not one per comparison."""
    if c.status == tolerance.IDENTICAL:
        return c  # the report singles out no identical element
    entry = reconciliation_summary.rank(c)
    if len(worst_ranks) < reconciliation_summary.WORST_KEPT:
        heapq.heappush(worst_ranks, entry)
    elif entry > worst_ranks[0]:
        heapq.heapreplace(worst_ranks, entry)
    else:
        return c
    c.thumbnail = thumbnail(raw)
    return c


class _RescoreDoFn(beam.DoFn):
    """Sampled Scored -> ElementComparison (main), ProbeResult and SweepTiming (tagged).

    Thumbnails are made only for comparisons that enter this bundle's own worst few, so their
    cost stays a handful per bundle however large the sample. Like the thumbnails, the probe
    budget is per bundle: all per-bundle state is set in start_bundle(), so a bundle that Beam
    retries makes the same records again, whatever this instance processed before.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        batch_size: int,
        pad_batches: bool,
        sweep_sizes: tuple[int, ...],
        atol: float,
        rtol: float,
        batch_probes_per_bundle: int,
    ):
        self._config = model_config
        self._batch_size = batch_size
        self._pad = pad_batches
        self._sweep_sizes = sweep_sizes
        self._atol, self._rtol = atol, rtol
        self._batch_probes_per_bundle = batch_probes_per_bundle
        self._compared = Metrics.counter(METRICS_NAMESPACE, "reconciled")
        self._mismatches = Metrics.counter(METRICS_NAMESPACE, "reconcile_mismatches")

    def setup(self):
        self._load_metrics = ModelLoadMetrics()
        self._model = self._config.acquire(self._load_metrics)  # the one RunInference uses
        # One clean layer profile per instance, committed only when its bundle finishes.
        self._clean_profiled = False

    def start_bundle(self):
        self._repeat_probed = False
        self._batch_probes_left = self._batch_probes_per_bundle
        self._pending: list[Scored] = []  # awaiting a padded reference call
        self._worst_ranks: list[tuple] = []
        self._sweep: dict[int, list[tuple[Scored, np.ndarray]]] = {s: [] for s in self._sweep_sizes}
        self._timing = {s: [0, 0.0] for s in self._sweep_sizes}
        self._failure_profiled = False
        self._clean_candidate: Scored | None = None

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
        mismatch = comparison["status"] == tolerance.MISMATCH
        if comparison["status"] not in (tolerance.IDENTICAL, tolerance.WITHIN_TOLERANCE):
            self._mismatches.inc()
        yield from self._probe(scored, reference, mismatch)
        agreed = comparison["status"] in (tolerance.IDENTICAL, tolerance.WITHIN_TOLERANCE)
        if agreed and self._clean_candidate is None:
            self._clean_candidate = scored
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
        for size, buffer in self._sweep.items():
            buffer.append((scored, reference))
            if len(buffer) == size:
                yield from self._flush_sweep(size)

    def _failed(
        self, scored: Scored, size: int, position: int, error: Exception, sweep: bool = False
    ) -> ElementComparison:
        """The comparison whose reference call raised: status ``reference_error``, counted."""
        if not sweep:  # the counters count the job's own comparisons, as _compare does
            self._compared.inc()
            self._mismatches.inc()
        c = ElementComparison.of(
            scored.uri,
            size,
            position,
            SINGLE,
            tolerance.failed_reference(scored.scores),
            sweep=sweep,
            key=scored.key,
            error=f"model raised {type(error).__name__}: {error_detail(error)}",
        )
        return self._with_thumbnail(c, scored.raw)

    def _probe(self, scored: Scored, reference: np.ndarray, mismatch: bool):
        """The repeat probe on the bundle's first element; all probes on its first mismatches."""
        batch_probes = mismatch and self._batch_probes_left > 0
        if self._repeat_probed and not batch_probes:
            return
        self._repeat_probed = True
        self._batch_probes_left -= batch_probes
        if batch_probes:
            self._failure_profiled = True
            profile = self._layer_profile(scored, failed=True)
            if profile is not None:
                yield beam.pvalue.TaggedOutput(PROBES, profile)
        # x's own batch is a call of batch_size rows among other images when it was full:
        # the probes reuse it rather than score x among made-up neighbours.
        own_batch = scored.scores if scored.batch_size == self._batch_size > 1 else None
        try:
            probes = diagnosis.run_probes(
                # In padded mode every call, probes included, has the padded shape.
                lambda batch: self._score(list(batch), self._batch_size if self._pad else None),
                scored.tensor,
                self._batch_size,
                self._atol,
                self._rtol,
                # Unpadded, the reference is x alone; padded, it is a regrouped padded call.
                alone=None if self._pad else reference,
                among_images=own_batch,
                batch_probes=batch_probes,
            )
        except Exception:  # noqa: BLE001 - a probe the model refuses proves nothing; no record
            return
        yield beam.pvalue.TaggedOutput(PROBES, probes)

    def _layer_profile(self, scored: Scored, failed: bool) -> LayerProfile | None:
        """Where x's row in (a stand-in for) its batch and its reference part ways."""
        pad = self._batch_size if self._pad else None
        return layer_probe.profile_model(
            self._model,
            layer_probe.in_its_batch(scored.tensor, scored.position, scored.batch_size, pad),
            scored.position,
            layer_probe.alone(scored.tensor, pad),
            0,
            self._atol,
            self._rtol,
            SINGLE,
            scored.key,
            failed=failed,
        )

    def _flush_sweep(self, size: int):
        buffer, self._sweep[size] = self._sweep[size], []
        if not buffer:
            return
        start = time.perf_counter()
        try:
            rows = self._score([s.tensor for s, _ in buffer], size if self._pad else None)
        except Exception as e:  # noqa: BLE001 - the call's comparisons record it, untimed
            for position, (scored, _) in enumerate(buffer):
                yield self._failed(scored, size, position, e, sweep=True)
            return
        self._timing[size][0] += len(buffer)
        self._timing[size][1] += time.perf_counter() - start
        # A bundle's last sweep call may be short: recorded at the rows it really had.
        for position, ((scored, reference), row) in enumerate(zip(buffer, rows, strict=True)):
            comparison = tolerance.compare_scores(row, reference, self._atol, self._rtol)
            c = ElementComparison.of(
                scored.uri, len(buffer), position, SINGLE, comparison, sweep=True, key=scored.key
            )
            yield self._with_thumbnail(c, scored.raw)

    def finish_bundle(self):
        outputs = list(self._flush_pending())
        for size in self._sweep_sizes:
            outputs.extend(self._flush_sweep(size))
        for record in outputs:
            yield GlobalWindows.windowed_value(record)
        if not (self._failure_profiled or self._clean_profiled or self._clean_candidate is None):
            # A clean job's noise profile: one element that agreed, once per instance.
            clean = self._layer_profile(self._clean_candidate, failed=False)
            if clean is not None:
                yield beam.pvalue.TaggedOutput(PROBES, GlobalWindows.windowed_value(clean))
            self._clean_profiled = True
        for size, (images, seconds) in self._timing.items():
            if images:
                timing = SweepTiming(size, images, seconds)
                yield beam.pvalue.TaggedOutput(TIMINGS, GlobalWindows.windowed_value(timing))


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
        input): the sample share is of matched - skipped; None means none were.
      extra_elements: optional PCollection of element records from other references
        (the serving path), summarised alongside.
      batch_probes_per_bundle: mismatching elements per bundle that get the batch-sized probes
        (each a batch-sized call); each bundle's first sampled element gets the repeat probe
        (a batch-of-1 call). One finds each fault the probes know; a clean job runs none.

    Returns:
      {"elements": ElementComparison records, "summary": a single summary dict}.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        pad_batches: bool,
        sweep_sizes: tuple[int, ...],
        settings: reconciliation_summary.SummarySettings,
        matched=None,
        extra_elements=None,
        batch_probes_per_bundle: int = 1,
        skipped=None,
    ):
        super().__init__()
        self._rescore = _RescoreDoFn(
            model_config,
            settings.batch_size,
            pad_batches,
            sweep_sizes,
            settings.atol,
            settings.rtol,
            batch_probes_per_bundle,
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
            >> beam.ParDo(self._rescore).with_outputs(PROBES, TIMINGS, main="elements")
        )
        elements, records = rescored.elements, [rescored[PROBES], rescored[TIMINGS]]
        if self._extra is not None:
            # Other references may send their layer profiles along: summarised, not written.
            extra = self._extra | "SplitReferenceProfiles" >> beam.Partition(
                lambda r, _: int(isinstance(r, LayerProfile)), 2
            )
            elements = (elements, extra[0]) | "MergeReferences" >> beam.Flatten()
            records.append(extra[1])
        summary = (
            (elements, *records)
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
        return {"elements": elements, "summary": summary}
