"""Comparing a batched score vector with its reference, and a mergeable |diff| sketch.

Pure numpy, no Beam: the maths the reconciliation summary is made of.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

IDENTICAL = "identical"
WITHIN_TOLERANCE = "within_tolerance"
MISMATCH = "mismatch"
NON_FINITE = "non_finite"
REFERENCE_ERROR = "reference_error"
STATUSES = (IDENTICAL, WITHIN_TOLERANCE, MISMATCH, NON_FINITE, REFERENCE_ERROR)


def _top1(scores: np.ndarray) -> int:
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    return int(np.argmax(finite))


def compare_scores(
    batch: np.ndarray, reference: np.ndarray, atol: float, rtol: float
) -> dict[str, Any]:
    """Element-level comparison of the reconciliation record.

    ``within_tolerance`` is numpy's allclose rule, |batch - ref| <= atol + rtol * |ref| on
    every class, plus the same top-1. NaN or Inf on either side is ``non_finite`` with null
    diffs and no top-1 match, never ``identical``: two NaN vectors agree on nothing.
    """
    batch = np.asarray(batch, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    bitwise = batch.shape == reference.shape and batch.tobytes() == reference.tobytes()
    top1_batch, top1_reference = _top1(batch), _top1(reference)
    record: dict[str, Any] = {
        "top1_batch": top1_batch,
        "top1_reference": top1_reference,
        "top1_match": top1_batch == top1_reference,
        "bitwise_equal": bitwise,
    }
    if not (np.all(np.isfinite(batch)) and np.all(np.isfinite(reference))):
        record.update(max_abs_diff=None, max_rel_diff=None, status=NON_FINITE, top1_match=False)
        return record
    if bitwise:
        record.update(max_abs_diff=0.0, max_rel_diff=0.0, status=IDENTICAL)
        return record
    diff = np.abs(batch.astype(np.float64) - reference.astype(np.float64))
    magnitude = np.abs(reference.astype(np.float64))
    rel = diff / np.maximum(magnitude, np.finfo(np.float32).tiny)
    close = bool(np.all(diff <= atol + rtol * magnitude)) and record["top1_match"]
    record.update(
        max_abs_diff=float(diff.max()),
        max_rel_diff=float(rel.max()),
        status=WITHIN_TOLERANCE if close else MISMATCH,
    )
    return record


def failed_reference(batch: np.ndarray) -> dict[str, Any]:
    """The comparison when the reference itself failed (the model raised on it): nothing is
    compared, and the element counts as failed (its batched score cannot be reproduced)."""
    return {
        "top1_batch": _top1(np.asarray(batch, dtype=np.float32)),
        "top1_reference": None,
        "top1_match": False,
        "bitwise_equal": False,
        "max_abs_diff": None,
        "max_rel_diff": None,
        "status": REFERENCE_ERROR,
    }


class LogHistogram:
    """Counts of |diff| in log-spaced bins (4 per decade, 1e-12 to 1e3) plus exact zeros.

    Mergeable by adding counts, so quantiles come from a CombineFn without a list of elements.
    A quantile is reported as its bin's upper edge, capped at the observed maximum: within
    a factor 10**0.25 of the true value, which is all a log-scale judgement needs.
    """

    LOW_EXP, HIGH_EXP, PER_DECADE = -12, 3, 4
    NUM_BINS = (HIGH_EXP - LOW_EXP) * PER_DECADE + 2  # + zero bin + overflow bin

    @classmethod
    def empty(cls) -> list[int]:
        return [0] * cls.NUM_BINS

    @classmethod
    def bin_of(cls, value: float) -> int:
        if value <= 0.0:
            return 0
        if not math.isfinite(value):
            return cls.NUM_BINS - 1
        position = math.ceil((math.log10(value) - cls.LOW_EXP) * cls.PER_DECADE)
        return int(min(max(position, 0), cls.NUM_BINS - 2)) + 1

    @classmethod
    def upper_edge(cls, index: int) -> float:
        if index == 0:
            return 0.0
        return 10.0 ** (cls.LOW_EXP + (index - 1) / cls.PER_DECADE)

    @classmethod
    def add(cls, counts: list[int], value: float) -> None:
        counts[cls.bin_of(value)] += 1

    @staticmethod
    def merge(a: list[int], b: list[int]) -> list[int]:
        return [x + y for x, y in zip(a, b, strict=True)]

    @classmethod
    def quantile(cls, counts: list[int], q: float, observed_max: float) -> float | None:
        total = sum(counts)
        if total == 0:
            return None
        rank = q * total
        running = 0
        for index, count in enumerate(counts):
            running += count
            if running >= rank and count:
                return min(cls.upper_edge(index), observed_max)
        return observed_max
