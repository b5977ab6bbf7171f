"""SweepBatchSizes: the reconciliation sample scored again at each ``--sweep_batch_sizes`` size.

Which elements share a sweep batch is a function of the data alone, never of how a runner cuts
its bundles: each sampled element goes to one of ``bucket_count`` buckets by a stable hash of
its key, a bucket is grouped (a GroupByKey: the sample's tensors cross one shuffle, about
``--reconcile_fraction`` of the job, the price of an opt-in diagnostic), sorted by key and cut
into consecutive batches of each size. A bucket's last batch at a size may be short: it is
recorded at its real size. Jobs without ``--sweep_batch_sizes`` never build this step.

The sweep's comparisons (``sweep=True``, each row against the element's single-element
reference) and model timings feed the summary; the job's counters do not count them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import NamedTuple

import apache_beam as beam
import numpy as np

from transforms.core import records, tolerance
from transforms.core.comparisons import SINGLE, ElementComparison, SweepTiming
from transforms.core.model_reading import call_model
from transforms.core.records import error_detail
from transforms.core.thumbnails import with_thumbnail
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics

TIMINGS = "timings"
# A bucket is held in one worker's memory while it is sorted and scored: expect this many
# tensors in one (a few batches of the largest size), or two batches of a larger size.
BUCKET_TENSORS = 256
_BUCKET_SALT = "sweep bucket\n"  # so buckets do not follow the sample's own hash


@dataclasses.dataclass(frozen=True)
class SweepCandidate:
    """A compared element, for the sweep: its tensor and both of its score rows."""

    key: str
    uri: str
    tensor: np.ndarray
    batch_scores: np.ndarray  # the job's batched row (what a failed sweep call records)
    reference: np.ndarray  # its single-element reference, which each sweep row is compared to
    raw: bytes | None  # the encoded image, for a thumbnail


def bucket_count(sample_size: float | None, largest: int) -> int:
    """How many buckets the sample is dealt into: about ``max(BUCKET_TENSORS, 2 x largest)``
    elements each, one bucket when the sample's size is unknown."""
    if not sample_size:
        return 1
    return max(1, math.ceil(sample_size / max(BUCKET_TENSORS, 2 * largest)))


def bucket_of(key: str, buckets: int) -> int:
    """The bucket of ``key``: the same on every run, uniform over ``buckets``."""
    return min(buckets - 1, int(records.stable_fraction(_BUCKET_SALT + key) * buckets))


class _AssignBucketDoFn(beam.DoFn):
    """SweepCandidate -> (bucket, candidate), the bucket count sized by the expected sample."""

    def __init__(self, fraction: float, minimum: int, largest: int):
        self._fraction, self._minimum, self._largest = fraction, minimum, largest

    def process(self, candidate: SweepCandidate, matched=None, skipped=0):
        sample = None
        if matched is not None:
            share = records.sample_share(self._fraction, self._minimum, matched, skipped)
            sample = share * (matched - skipped)
        yield bucket_of(candidate.key, bucket_count(sample, self._largest)), candidate


class _ScoreBucketDoFn(beam.DoFn):
    """(bucket, candidates) -> ElementComparison (main) and SweepTiming (tagged), per size."""

    def __init__(
        self,
        model_config: ModelConfig,
        sizes: tuple[int, ...],
        pad_batches: bool,
        atol: float,
        rtol: float,
    ):
        self._config = model_config
        self._sizes = sizes
        self._pad = pad_batches
        self._atol, self._rtol = atol, rtol

    def setup(self):
        self._load_metrics = ModelLoadMetrics()
        self._model = self._config.acquire(self._load_metrics)  # the one RunInference uses

    def start_bundle(self):
        self._worst_ranks: list[tuple] = []

    def process(self, bucket: tuple[int, list[SweepCandidate]]):
        self._load_metrics.update_metrics_with_cache()
        members = sorted(bucket[1], key=lambda c: (c.key, c.uri))
        for size in self._sizes:
            images, seconds = 0, 0.0
            for start in range(0, len(members), size):
                batch = members[start : start + size]
                began = time.perf_counter()
                try:
                    stacked = np.stack([c.tensor for c in batch])
                    rows = call_model(self._model, stacked, size if self._pad else None)
                except Exception as e:  # noqa: BLE001 - the call's comparisons record it, untimed
                    for position, candidate in enumerate(batch):
                        yield self._failed(candidate, len(batch), position, e)
                    continue
                images += len(batch)
                seconds += time.perf_counter() - began
                for position, (candidate, row) in enumerate(zip(batch, rows, strict=True)):
                    yield self._compared(candidate, len(batch), position, row)
            if images:
                yield beam.pvalue.TaggedOutput(TIMINGS, SweepTiming(size, images, seconds))

    def _compared(self, candidate: SweepCandidate, size: int, position: int, row: np.ndarray):
        # A short batch (a bucket's last) is recorded at the rows it really had.
        comparison = tolerance.compare_scores(row, candidate.reference, self._atol, self._rtol)
        c = ElementComparison.of(
            candidate.uri, size, position, SINGLE, comparison, sweep=True, key=candidate.key
        )
        return with_thumbnail(self._worst_ranks, c, candidate.raw)

    def _failed(self, candidate: SweepCandidate, size: int, position: int, error: Exception):
        c = ElementComparison.of(
            candidate.uri,
            size,
            position,
            SINGLE,
            tolerance.failed_reference(candidate.batch_scores),
            sweep=True,
            key=candidate.key,
            error=f"model raised {type(error).__name__}: {error_detail(error)}",
        )
        return with_thumbnail(self._worst_ranks, c, candidate.raw)


class SweepResult(NamedTuple):
    """What ``SweepBatchSizes`` returns: the sweep's comparisons and its timings."""

    elements: beam.PCollection  # ElementComparison records, sweep=True
    timings: beam.PCollection  # SweepTiming records


class SweepBatchSizes(beam.PTransform):
    """SweepCandidate records -> the sample's comparisons and timings at each swept size.

    Args:
      model_config: the job's model (shared, loaded once per process).
      sizes: the ``--sweep_batch_sizes`` sizes.
      pad_batches: pad each sweep call to its size, as the job pads its batches.
      atol, rtol: the job's tolerance.
      fraction, minimum: the job's ``--reconcile_fraction`` and ``--reconcile_min``, which
        with ``matched`` and ``skipped`` (singleton PCollections, side inputs; None: unknown,
        none) give the sample's expected size, and so the number of buckets.

    Returns:
      A ``SweepResult``: ``elements``, the ElementComparison records (sweep=True), and
      ``timings``, the SweepTiming records.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        sizes: tuple[int, ...],
        pad_batches: bool,
        atol: float,
        rtol: float,
        fraction: float,
        minimum: int,
        matched=None,
        skipped=None,
    ):
        super().__init__()
        self._assign = _AssignBucketDoFn(fraction, minimum, max(sizes))
        self._score = _ScoreBucketDoFn(model_config, sizes, pad_batches, atol, rtol)
        self._matched, self._skipped = matched, skipped

    def expand(self, candidates):
        side = {}
        if self._matched is not None:
            side["matched"] = beam.pvalue.AsSingleton(self._matched)
        if self._skipped is not None:
            side["skipped"] = beam.pvalue.AsSingleton(self._skipped)
        scored = (
            candidates
            | "AssignBuckets" >> beam.ParDo(self._assign, **side)
            | "GroupByBucket" >> beam.GroupByKey()
            | "ScoreBuckets" >> beam.ParDo(self._score).with_outputs(TIMINGS, main="elements")
        )
        return SweepResult(scored.elements, scored[TIMINGS])
