"""The tolerance rule of ``compare_scores``, pinned case by case (pure numpy, no pipeline).

``within_tolerance`` is numpy's allclose rule on every class, |batch - ref| <= atol + rtol * |ref|,
and the same top-1; these cases sit on either side of each part of that rule.
"""

import numpy as np
import pytest

from transforms.core.tolerance import compare_scores

ATOL, RTOL = 1e-5, 1e-4


def _status(batch, reference, atol=ATOL, rtol=RTOL) -> str:
    return compare_scores(
        np.asarray(batch, np.float32), np.asarray(reference, np.float32), atol, rtol
    )["status"]


def test_relative_part_scales_with_the_reference_magnitude():
    # Allowed |diff| at a logit of 1000 is 1e-5 + 0.1: a difference of 0.05 is noise there,
    # while the same 0.05 at 0.2 is far outside atol + rtol * 0.2.
    assert _status([1000.05, 1.0], [1000.0, 1.0]) == "within_tolerance"
    assert _status([0.25, 0.1], [0.2, 0.1]) == "mismatch"


def test_relative_part_uses_each_class_own_magnitude():
    # 5e-4 is within rtol of the large class but not of the small one next to it.
    assert _status([10.0005, 0.1], [10.0, 0.1]) == "within_tolerance"
    assert _status([10.0, 0.1005], [10.0, 0.1]) == "mismatch"


@pytest.mark.parametrize("diff, expected", [(0.9e-5, "within_tolerance"), (5e-5, "mismatch")])
def test_absolute_part_governs_near_zero(diff, expected):
    # Near zero the relative part vanishes: only atol (1e-5) remains.
    assert _status([diff, 0.5], [0.0, 0.5]) == expected


def test_a_top1_change_is_a_mismatch_even_inside_the_tolerance():
    # Loose tolerances would accept these values, but the predicted class differs.
    record = compare_scores(
        np.array([0.5001, 0.5], np.float32), np.array([0.5, 0.5001], np.float32), 1e-2, 1e-2
    )
    assert record["top1_batch"] == 0 and record["top1_reference"] == 1
    assert not record["top1_match"] and record["status"] == "mismatch"


def test_differences_are_reported_in_absolute_and_relative_terms():
    record = compare_scores(
        np.array([2.0, 0.5], np.float32), np.array([2.0, 0.25], np.float32), ATOL, RTOL
    )
    assert record["max_abs_diff"] == pytest.approx(0.25)
    assert record["max_rel_diff"] == pytest.approx(1.0)
    assert record["status"] == "mismatch" and record["top1_match"]
