"""The reconciliation summary's maths: a mergeable accumulator and what it proves.

Pure Python and numpy (no Beam): ``accumulate`` / ``merge`` / ``summarize`` are the CombineFn's
three steps, tested without a pipeline. The guarantee is a one-sided exact (Clopper-Pearson)
binomial upper bound (``transforms.core.bounds``): the sample is a uniform hash sample of the
job's elements, so with ``k`` of ``n`` sampled comparisons failing, the share of ALL predictions
that fail is at most ``upper(k, n)`` with the stated confidence; ``transforms.core.guarantee``
puts it in words.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
from typing import Any

import numpy as np

from transforms.core import diagnosis, tolerance
from transforms.core.bounds import CONFIDENCE, clopper_pearson_upper, finite_or_none
from transforms.core.comparisons import (
    SINGLE,
    ElementComparison,
    LayerProfile,
    ProbeResult,
    SweepTiming,
)
from transforms.core.guarantee import guarantee_sentence, worst_reference
from transforms.core.records import effective_fraction
from transforms.core.tolerance import LogHistogram

WORST_KEPT = 10


@dataclasses.dataclass
class GroupStats:
    """Counts of one slice of comparisons (a reference, a batch size, sweep or not)."""

    compared: int = 0
    identical: int = 0
    within_tolerance: int = 0
    mismatch: int = 0
    non_finite: int = 0
    reference_error: int = 0
    top1_agree: int = 0
    max_abs_diff: float = 0.0
    hist: list[int] = dataclasses.field(default_factory=LogHistogram.empty)

    def add(self, c: ElementComparison) -> None:
        self.compared += 1
        setattr(self, c.status, getattr(self, c.status) + 1)
        self.top1_agree += int(c.top1_match)
        diff = float("inf") if c.max_abs_diff is None else c.max_abs_diff
        self.max_abs_diff = max(self.max_abs_diff, diff)
        LogHistogram.add(self.hist, diff)

    def merged(self, other: GroupStats) -> GroupStats:
        return GroupStats(
            *(
                getattr(self, f) + getattr(other, f)
                for f in (
                    "compared",
                    "identical",
                    "within_tolerance",
                    "mismatch",
                    "non_finite",
                    "reference_error",
                )
            ),
            top1_agree=self.top1_agree + other.top1_agree,
            max_abs_diff=max(self.max_abs_diff, other.max_abs_diff),
            hist=LogHistogram.merge(self.hist, other.hist),
        )

    @property
    def failed(self) -> int:
        return self.mismatch + self.non_finite + self.reference_error

    def summary(self, exhaustive: bool = False) -> dict[str, Any]:
        """The counts as the summary reports them, with the bounds they support.

        ``exhaustive``: every prediction of the job was compared, so the rates are known
        exactly and the bounds are the observed rates.
        """
        observed = self.max_abs_diff
        quantiles = {
            f"p{int(q * 100)}": finite_or_none(LogHistogram.quantile(self.hist, q, observed))
            for q in (0.5, 0.9, 0.99)
        }
        quantiles["max"] = finite_or_none(observed) if self.compared else None
        return {
            "compared": self.compared,
            "identical": self.identical,
            "within_tolerance": self.within_tolerance,
            "mismatch": self.mismatch,
            "non_finite": self.non_finite,
            "reference_error": self.reference_error,
            "top1_agreement": self.top1_agree / self.compared if self.compared else 1.0,
            "max_abs_diff": finite_or_none(observed),
            "abs_diff_quantiles": quantiles,
            "mismatch_rate_upper": self._upper(self.failed, exhaustive),
            "top1_flip_rate_upper": self._upper(self.compared - self.top1_agree, exhaustive),
        }

    def _upper(self, failures: int, exhaustive: bool) -> float:
        if exhaustive and self.compared:
            return failures / self.compared
        return clopper_pearson_upper(failures, self.compared)


@dataclasses.dataclass
class ProbeStats:
    """Merged results of one probe kind."""

    probes: int = 0
    beyond_tolerance: int = 0
    top1_changed: int = 0
    bitwise: int = 0
    non_finite: int = 0
    max: float = 0.0

    def merged(self, other: ProbeStats) -> ProbeStats:
        return ProbeStats(
            self.probes + other.probes,
            self.beyond_tolerance + other.beyond_tolerance,
            self.top1_changed + other.top1_changed,
            self.bitwise + other.bitwise,
            self.non_finite + other.non_finite,
            max(self.max, other.max),
        )


GroupKey = tuple[str, int, bool]  # (reference, batch size, sweep)


@dataclasses.dataclass
class Accumulator:
    """Everything the summary needs, in bounded size whatever the sample's size."""

    groups: dict[GroupKey, GroupStats] = dataclasses.field(default_factory=dict)
    probes: dict[str, ProbeStats] = dataclasses.field(
        default_factory=lambda: {name: ProbeStats() for name in diagnosis.PROBE_NAMES}
    )
    timings: dict[int, tuple[int, float]] = dataclasses.field(default_factory=dict)
    worst: list[tuple[tuple, ElementComparison]] = dataclasses.field(default_factory=list)
    preprocessing: dict | None = None
    # One batched score vector, and whether any other sampled image's scores differed from it.
    first_scores: np.ndarray | None = None
    scores_vary: bool = False
    # Layer profiles: per reference the failing one (ProbeChosenElements sends at most one,
    # first in key order), and one clean profile for a job with no failure.
    divergence: dict[str, LayerProfile] = dataclasses.field(default_factory=dict)
    clean_profile: LayerProfile | None = None


def _keep_profile(acc: Accumulator, profile: LayerProfile | None) -> None:
    if profile is None:
        return
    if not profile.failed:
        if acc.clean_profile is None or profile.key < acc.clean_profile.key:
            acc.clean_profile = profile
        return
    kept = acc.divergence.get(profile.reference)
    if kept is None or profile.key < kept.key:
        acc.divergence[profile.reference] = profile


def rank(c: ElementComparison) -> tuple:
    """Orders comparisons worst first; unique per comparison, so heaps never compare records."""
    diff = float("inf") if c.max_abs_diff is None else c.max_abs_diff
    return (c.status != tolerance.IDENTICAL, diff, c.uri, c.reference, c.batch_size, c.sweep)


def _same_scores(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=rtol))


def _note_scores(acc: Accumulator, scores: np.ndarray | None, atol: float, rtol: float) -> None:
    if scores is None or acc.scores_vary:
        return
    if acc.first_scores is None:
        acc.first_scores = np.asarray(scores, np.float32)
    elif not _same_scores(acc.first_scores, scores, atol, rtol):
        acc.scores_vary = True


def accumulate(acc: Accumulator, item, atol: float, rtol: float) -> Accumulator:
    """Adds one ElementComparison, ProbeResult or SweepTiming."""
    if isinstance(item, ElementComparison):
        key = (item.reference, item.batch_size, item.sweep)
        acc.groups.setdefault(key, GroupStats()).add(item)
        if not item.sweep:
            _note_scores(acc, item.batch_scores, atol, rtol)
        if item.serving_preprocessing is not None:
            acc.preprocessing = _merge_preprocessing(acc.preprocessing, _preprocessing_of(item))
        kept = dataclasses.replace(item, batch_scores=None)
        entry = (rank(item), kept)
        if len(acc.worst) < WORST_KEPT:
            heapq.heappush(acc.worst, entry)
        elif entry[0] > acc.worst[0][0]:
            heapq.heapreplace(acc.worst, entry)
    elif isinstance(item, LayerProfile):
        _keep_profile(acc, item)
    elif isinstance(item, SweepTiming):
        images, seconds = acc.timings.get(item.batch_size, (0, 0.0))
        acc.timings[item.batch_size] = (images + item.images, seconds + item.seconds)
    elif isinstance(item, ProbeResult):
        for name, p in item.probes.items():
            acc.probes[name] = acc.probes[name].merged(
                ProbeStats(
                    1,
                    int(p.beyond_tolerance),
                    int(p.top1_changed),
                    int(p.bitwise_equal),
                    int(p.non_finite),
                    0.0 if p.max_abs_diff is None else p.max_abs_diff,
                )
            )
    else:
        raise TypeError(f"cannot summarise {type(item).__name__}")
    return acc


def merge(accumulators, atol: float, rtol: float) -> Accumulator:
    merged = Accumulator()
    for acc in accumulators:
        for key, group in acc.groups.items():
            merged.groups[key] = merged.groups.get(key, GroupStats()).merged(group)
        for name in diagnosis.PROBE_NAMES:
            merged.probes[name] = merged.probes[name].merged(acc.probes[name])
        for size, (images, seconds) in acc.timings.items():
            old = merged.timings.get(size, (0, 0.0))
            merged.timings[size] = (old[0] + images, old[1] + seconds)
        merged.worst = heapq.nlargest(WORST_KEPT, merged.worst + acc.worst, key=lambda e: e[0])
        heapq.heapify(merged.worst)
        merged.preprocessing = _merge_preprocessing(merged.preprocessing, acc.preprocessing)
        merged.scores_vary = merged.scores_vary or acc.scores_vary
        for profile in [*acc.divergence.values(), acc.clean_profile]:
            _keep_profile(merged, profile)
        _note_scores(merged, acc.first_scores, atol, rtol)
    return merged


def _preprocessing_of(c: ElementComparison) -> dict:
    return {
        "batch": c.batch_preprocessing,
        "serving": c.serving_preprocessing,
        "input_max_abs_diff": c.input_max_abs_diff,
    }


def _merge_preprocessing(a: dict | None, b: dict | None) -> dict | None:
    """Keeps the specs (one job, one pair) and the largest model-input difference seen."""
    if a is None or b is None:
        return a or b
    diffs = [d for d in (a["input_max_abs_diff"], b["input_max_abs_diff"]) if d is not None]
    return a | {"input_max_abs_diff": max(diffs) if diffs else None}


def preprocessing_evidence(preprocessing: dict | None) -> str | None:
    """Plain words for how the batch and serving preprocessing differ."""
    if preprocessing is None:
        return None
    batch = json.loads(preprocessing["batch"])
    serving = json.loads(preprocessing["serving"])
    differences = [
        f"{name}: batch {batch.get(name)!r} vs serving {serving.get(name)!r}"
        for name in sorted(set(batch) | set(serving))
        if batch.get(name) != serving.get(name)
    ]
    words = (
        "preprocessing specs differ (" + "; ".join(differences) + ")"
        if differences
        else "preprocessing specs are identical"
    )
    diff = preprocessing["input_max_abs_diff"]
    if diff is not None:
        words += f"; the model inputs differ by up to {diff:.3g}"
    return words


def _fold(groups) -> GroupStats:
    total = GroupStats()
    for group in groups:
        total = total.merged(group)
    return total


@dataclasses.dataclass(frozen=True)
class SummarySettings:
    """The job's settings the summary reports and judges by (plain values)."""

    atol: float
    rtol: float
    fraction: float
    batch_size: int
    reconcile_min: int = 0
    model_warnings: tuple[dict, ...] = ()


def verdict(compared: int, failed: int, constant: bool) -> str:
    """``pass`` needs evidence: comparisons, none failed, and scores that vary by image."""
    if not compared:
        return "inconclusive"
    if failed:
        return "fail"
    return "inconclusive" if constant else "pass"


def summarize(
    acc: Accumulator,
    settings: SummarySettings,
    matched: int | None = None,
    predictions: int | None = None,
    skipped: int = 0,
    exif_oriented: int | None = None,
) -> dict[str, Any]:
    """The summary.json record from a merged accumulator, the job's matched count (which sizes
    the sample, less the ``skipped`` inputs ``--skip_existing`` left out) and its number of
    predictions (what the guarantee is about).

    The verdict, counts, bounds, ``by_batch_size`` and ``by_reference`` describe the job as it
    ran; ``sweep`` reports each swept batch size on its own, so exploring sizes the job does
    not use never fails it. The headline bounds are the worst over the references.
    """
    job = {key: g for key, g in acc.groups.items() if not key[2]}
    swept = {key: g for key, g in acc.groups.items() if key[2]}
    overall = _fold(job.values())
    effective = None
    if matched is not None:
        # The sample is drawn from what the job scores: skipped inputs are never compared.
        effective = effective_fraction(settings.fraction, settings.reconcile_min, matched - skipped)
    single_compared = sum(g.compared for (r, _, _), g in job.items() if r == SINGLE)
    # Every prediction was compared with its single-element reference: nothing is estimated.
    exhaustive = bool(predictions and single_compared >= predictions)
    references = sorted({ref for ref, _, _ in job})
    by_reference = {
        ref: _fold(g for (r, _, _), g in job.items() if r == ref).summary(exhaustive)
        for ref in references
    }
    by_batch_size = {
        str(size): _fold(g for (_, s, _), g in job.items() if s == size).summary()
        for size in sorted({size for _, size, _ in job})
    }
    histograms = {
        f"{ref} · batch {size}": g.hist for (ref, size, _), g in sorted(job.items()) if g.compared
    }
    sweep = {}
    # A size whose every call failed has comparisons (reference_error) but no timing.
    for size in sorted(set(acc.timings) | {size for _, size, _ in swept}):
        images, seconds = acc.timings.get(size, (0, 0.0))
        group = _fold(g for (_, s, _), g in swept.items() if s == size)
        histograms[f"sweep · batch {size}"] = group.hist
        sweep[str(size)] = {
            "images": images,
            "seconds": seconds,
            "images_per_second": images / seconds if seconds > 0 else None,
            **group.summary(),
        }
    counts = overall.summary(exhaustive)
    # The guarantee holds per reference; the headline states the weakest.
    for name in ("mismatch_rate_upper", "top1_flip_rate_upper"):
        counts[name] = max([r[name] for r in by_reference.values()], default=1.0)
    constant = bool(single_compared >= 2 and acc.first_scores is not None and not acc.scores_vary)
    divergence = [acc.divergence[ref] for ref in sorted(acc.divergence)]
    if not divergence and acc.clean_profile is not None:
        divergence = [acc.clean_profile]
    summary = {
        **counts,
        "atol": settings.atol,
        "rtol": settings.rtol,
        "fraction": settings.fraction,
        "reconcile_min": settings.reconcile_min,
        "matched": matched,
        "skipped": skipped,
        "predictions": predictions,
        "exif_oriented": exif_oriented,
        "effective_fraction": effective,
        "confidence": CONFIDENCE,
        "exhaustive": exhaustive,
        "batch_size": settings.batch_size,
        "verdict": verdict(overall.compared, overall.failed, constant),
        "constant_output": constant,
        "by_batch_size": by_batch_size,
        "by_reference": by_reference,
        "worst_reference": worst_reference(by_reference),
        "sweep": sweep,
        "diagnosis": diagnosis.with_divergence(
            diagnosis.diagnose(
                {name: dataclasses.asdict(p) for name, p in acc.probes.items()},
                by_reference,
                preprocessing_evidence(acc.preprocessing),
                constant_output=constant,
                exif_oriented=exif_oriented,
            ),
            divergence,
        ),
        "divergence": [p.to_record() for p in divergence],
        "model_warnings": [dict(w) for w in settings.model_warnings],
        "preprocessing": acc.preprocessing,
        "probes": {name: dataclasses.asdict(p) for name, p in acc.probes.items()},
        "worst": [_worst_record(c) for _, c in sorted(acc.worst, key=lambda e: e[0], reverse=True)],
        "abs_diff_histogram": {
            "bin_upper_edges": [LogHistogram.upper_edge(i) for i in range(LogHistogram.NUM_BINS)],
            "counts": overall.hist,
            "by_series": histograms,
        },
    }
    summary["guarantee"] = guarantee_sentence(summary)
    return summary


def _worst_record(c: ElementComparison) -> dict[str, Any]:
    record = c.to_record()
    if c.thumbnail:
        record["thumbnail"] = c.thumbnail
    return record
