"""Value checks of the reconciliation summary's merge, written from mutation testing's survivors.

``merge`` must give exactly what one pass over all items gives: timings added per batch size,
the serving preprocessing evidence kept with its largest input difference, and "do the scores
vary by image" decided across accumulators. Pure Python, no pipeline.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from transforms.core import (
    bounds,
    diagnosis,
    guarantee,
    reconciliation_summary,
    tolerance,
    wording,
)
from transforms.core.comparisons import (
    SERVING,
    SINGLE,
    ElementComparison,
    ProbeDiff,
    ProbeResult,
    SweepTiming,
)

ATOL, RTOL = 1e-5, 1e-4
SPEC_A = '{"image_size": [8, 8], "normalization": "symmetric"}'
SPEC_B = '{"image_size": [8, 8], "normalization": "unit"}'


def _comparison(uri, scores, reference=SINGLE, **extra):
    scores = np.asarray(scores, np.float32)
    result = tolerance.compare_scores(scores, scores.copy(), ATOL, RTOL)
    return ElementComparison.of(uri, 4, 0, reference, result, batch_scores=scores, **extra)


def _acc(*items):
    acc = reconciliation_summary.Accumulator()
    for item in items:
        reconciliation_summary.accumulate(acc, item, ATOL, RTOL)
    return acc


def test_merge_adds_timings_per_batch_size():
    a = _acc(SweepTiming(8, 16, 0.5), SweepTiming(8, 4, 0.25), SweepTiming(2, 3, 1.0))
    assert a.timings == {8: (20, 0.75), 2: (3, 1.0)}
    b = _acc(SweepTiming(8, 2, 2.0))
    merged = reconciliation_summary.merge([a, b], ATOL, RTOL)
    assert merged.timings == {8: (22, 2.75), 2: (3, 1.0)}
    assert reconciliation_summary.merge([b], ATOL, RTOL).timings == {8: (2, 2.0)}


def test_merge_keeps_the_preprocessing_evidence_and_its_largest_difference():
    first = _comparison(
        "a", [0.1, 0.9], SERVING, batch_preprocessing=SPEC_A, serving_preprocessing=SPEC_B
    )
    first = first.__class__(**{**first.__dict__, "input_max_abs_diff": 0.25})
    second = _comparison(
        "b", [0.2, 0.8], SERVING, batch_preprocessing=SPEC_A, serving_preprocessing=SPEC_B
    )
    second = second.__class__(**{**second.__dict__, "input_max_abs_diff": 0.5})
    expected = {"batch": SPEC_A, "serving": SPEC_B, "input_max_abs_diff": 0.5}
    assert _acc(first, second).preprocessing == expected
    assert (
        reconciliation_summary.merge([_acc(first), _acc(second)], ATOL, RTOL).preprocessing
        == expected
    )
    assert (
        reconciliation_summary.merge([_acc(second), _acc(first)], ATOL, RTOL).preprocessing
        == expected
    )
    only_one = reconciliation_summary.merge([_acc(first), _acc()], ATOL, RTOL).preprocessing
    assert only_one == {**expected, "input_max_abs_diff": 0.25}
    assert (
        reconciliation_summary.merge([_acc(), _acc(second)], ATOL, RTOL).preprocessing == expected
    )
    assert reconciliation_summary.merge([_acc(), _acc()], ATOL, RTOL).preprocessing is None
    # No input difference measured on either side: none reported, not a crash.
    none = {"batch": SPEC_A, "serving": SPEC_B, "input_max_abs_diff": None}
    assert reconciliation_summary._merge_preprocessing(none, dict(none)) == none
    assert reconciliation_summary._merge_preprocessing(none, expected)["input_max_abs_diff"] == 0.5
    assert reconciliation_summary._merge_preprocessing(expected, none)["input_max_abs_diff"] == 0.5
    words = reconciliation_summary.preprocessing_evidence(expected)
    assert words == (
        "preprocessing specs differ (normalization: batch 'symmetric' vs serving 'unit'); "
        "the model inputs differ by up to 0.5"
    )
    assert reconciliation_summary.preprocessing_evidence(none | {"serving": SPEC_A}) == (
        "preprocessing specs are identical"
    )
    assert reconciliation_summary.preprocessing_evidence(None) is None


def test_merge_decides_whether_scores_vary_across_accumulators():
    same = [0.25, 0.75]
    # Each part alone saw one image, so only the merge can see the scores vary.
    varied = reconciliation_summary.merge(
        [_acc(_comparison("a", same)), _acc(_comparison("b", [0.75, 0.25]))], ATOL, RTOL
    )
    assert varied.scores_vary is True
    constant = reconciliation_summary.merge(
        [_acc(_comparison("a", same)), _acc(_comparison("b", same))], ATOL, RTOL
    )
    assert constant.scores_vary is False
    np.testing.assert_array_equal(constant.first_scores, np.float32(same))
    # Within tolerance counts as the same scores: atol and rtol are the merge's.
    close = reconciliation_summary.merge(
        [_acc(_comparison("a", same)), _acc(_comparison("b", [0.25 + 1e-6, 0.75]))], ATOL, RTOL
    )
    assert close.scores_vary is False
    strict = reconciliation_summary.merge(
        [_acc(_comparison("a", same)), _acc(_comparison("b", [0.25 + 1e-6, 0.75]))], 0.0, 0.0
    )
    assert strict.scores_vary is True
    # A part that already saw variation keeps it whatever the others saw.
    mixed = _acc(_comparison("a", same), _comparison("b", [0.5, 0.5]))
    assert mixed.scores_vary is True
    assert (
        reconciliation_summary.merge([_acc(_comparison("c", same)), mixed], ATOL, RTOL).scores_vary
        is True
    )
    assert (
        reconciliation_summary.merge([mixed, _acc(_comparison("c", same))], ATOL, RTOL).scores_vary
        is True
    )
    summary = reconciliation_summary.summarize(
        constant, reconciliation_summary.SummarySettings(ATOL, RTOL, 1.0, 4), 2, 2
    )
    assert summary["constant_output"] is True and summary["verdict"] == "inconclusive"


def test_merge_keeps_the_worst_ten_worst_first():
    parts = []
    for part in range(3):
        items = []
        for i in range(8):
            base = np.float32([0.1, 0.9])
            noisy = base + np.float32([0.0, 1e-3 * (part * 8 + i)])
            result = tolerance.compare_scores(noisy, base, ATOL, RTOL)
            items.append(ElementComparison.of(f"u{part}-{i}", 4, i, SINGLE, result))
        parts.append(_acc(*items))
    merged = reconciliation_summary.merge(parts, ATOL, RTOL)
    ranks = sorted((rank for rank, _ in merged.worst), reverse=True)
    assert len(ranks) == reconciliation_summary.WORST_KEPT
    assert [r[1] for r in ranks] == pytest.approx([1e-3 * n for n in range(23, 13, -1)], rel=1e-3)


def test_probe_counts_add_up_within_and_across_accumulators():
    def probe(diff, beyond, flipped, bitwise, non_finite=False):
        return ProbeResult({"repeat": ProbeDiff(diff, beyond, flipped, bitwise, non_finite)})

    a = _acc(probe(0.0, False, False, True), probe(0.5, True, True, False))
    b = _acc(probe(None, True, False, False, True), probe(0.25, True, False, False))
    expected = reconciliation_summary.ProbeStats(4, 3, 1, 1, 1, 0.5)
    assert reconciliation_summary.merge([a, b], ATOL, RTOL).probes["repeat"] == expected
    assert _acc(*(probe(0.0, False, False, True) for _ in range(2))).probes["repeat"] == (
        reconciliation_summary.ProbeStats(2, 0, 0, 2, 0, 0.0)
    )
    assert (
        reconciliation_summary.merge([a, b], ATOL, RTOL).probes["shape"]
        == reconciliation_summary.ProbeStats()
    )


@pytest.mark.parametrize(
    "share, words",
    [
        (0.0, "0%"),
        (0.01, "1.0%"),
        (0.009936, "1.0%"),  # rounded up: a bound never claims more than it proves
        (0.0123, "1.3%"),
        (0.001, "0.1%"),
        (0.0005, "0.05%"),
        (0.000123, "0.013%"),
        (0.00005, "0.005%"),  # steps are powers of ten
        (0.5, "50.0%"),
    ],
)
def test_percentages_in_words_round_up(share, words):
    assert wording.percent(share, upper_bound=True) == words


@pytest.mark.parametrize(
    "share, words",
    [
        (0.0, "0%"),
        (0.01, "1.0%"),
        (0.009936, "1.0%"),
        (0.009436, "0.9%"),  # an exact share rounds to nearest, where a bound reads 1.0%
        (0.0125, "1.3%"),  # halves round up
        (0.0124, "1.2%"),
        (0.000123, "0.012%"),
        (0.00005, "0.005%"),
        (0.5, "50.0%"),
        (0.9996, ">99.9%"),  # never a perfect-looking 100.0% for a share below one
        (1.0, "100.0%"),
    ],
)
def test_percentages_in_words_round_to_nearest(share, words):
    assert wording.percent(share) == words


def test_a_stated_bound_is_never_below_the_true_bound():
    for share in (0.009436, 0.0004449, 0.123449, 0.99951):
        stated = float(wording.percent(share, upper_bound=True).rstrip("%")) / 100
        assert stated >= share


def test_group_summary_quantiles_and_bounds():
    group = reconciliation_summary.GroupStats()
    for i, diff in enumerate([0.0] * 5 + [1e-6] * 4 + [2e-3]):
        base = np.float32([0.1, 0.9])
        result = tolerance.compare_scores(base + np.float32([0.0, diff]), base, 1.0, 0.0)
        group.add(ElementComparison.of(f"u{i}", 4, 0, SINGLE, result))
    summary = group.summary()
    quantiles = summary["abs_diff_quantiles"]
    assert sorted(quantiles) == ["max", "p50", "p90", "p99"]
    assert quantiles["p50"] == 0.0
    assert quantiles["p90"] == pytest.approx(10**-5.75)  # the upper edge of 1.01e-6 (float32)
    assert quantiles["p99"] == quantiles["max"] == summary["max_abs_diff"]
    assert quantiles["max"] == pytest.approx(2e-3, rel=1e-3)
    assert summary["compared"] == 10 and summary["top1_agreement"] == 1.0
    # Sampled by default: a bound, not the observed rate of 0.
    assert summary["mismatch_rate_upper"] == pytest.approx(bounds.clopper_pearson_upper(0, 10))
    assert group.summary(exhaustive=True)["mismatch_rate_upper"] == 0.0
    empty = reconciliation_summary.GroupStats().summary()
    assert empty["abs_diff_quantiles"] == {"p50": None, "p90": None, "p99": None, "max": None}
    assert empty["top1_agreement"] == 1.0 and empty["mismatch_rate_upper"] == 1.0


def _sentence(**fields) -> str:
    summary = {"compared": 300, "mismatch": 0, "non_finite": 0, "mismatch_rate_upper": 0.00994}
    summary |= {"predictions": 48_211, "verdict": "pass", "confidence": 0.95} | fields
    return guarantee.guarantee_sentence(summary)


def test_the_guarantee_sentence_in_each_case():
    assert _sentence() == (
        "PASS: 300 of 300 sampled agree; with 95% confidence at most 1.0% of the 48,211 "
        "predictions differ beyond tolerance."
    )
    clean = {"compared": 300, "mismatch": 0, "non_finite": 0, "mismatch_rate_upper": 0.00994}
    assert _sentence(predictions=None, by_reference={"serving": clean, "single": clean}) == (
        "PASS: 300 of 300 sampled agree with the serving reference, 300 of 300 with the single "
        "reference; with 95% confidence at most 1.0% of the job's predictions differ beyond "
        "tolerance from either reference."
    )
    assert _sentence(verdict="fail", mismatch=2, non_finite=1, mismatch_rate_upper=0.03) == (
        "FAIL: 297 of 300 sampled agree (2 mismatch, 1 non-finite); with 95% confidence at "
        "most 3.0% of the 48,211 predictions differ beyond tolerance."
    )
    assert _sentence(predictions=300, exhaustive=True) == (
        "PASS: 300 of 300 sampled agree; every one of the 300 predictions was compared, so "
        "exactly none of them differ beyond tolerance (no sampling, no estimate)."
    )
    assert _sentence(predictions=300, exhaustive=True, verdict="fail", mismatch=3) == (
        "FAIL: 297 of 300 sampled agree (3 mismatch, 0 non-finite); every one of the 300 "
        "predictions was compared, so exactly 1.0% of them differ beyond tolerance (no "
        "sampling, no estimate)."
    )
    # An exact share rounds to nearest (1 of 300 is 0.333%), a bound rounds up (0.994% is 1.0%).
    assert "exactly 0.3% of them" in _sentence(predictions=300, exhaustive=True, mismatch=1)
    assert "at most 1.0% of" in _sentence(mismatch_rate_upper=0.00944)
    assert _sentence(verdict="inconclusive") == (
        "INCONCLUSIVE: 300 of 300 sampled agree, but the model gives every sampled image the "
        "same scores, so the comparison cannot see skew; nothing is proven."
    )
    assert _sentence(compared=0, verdict="inconclusive") == (
        "INCONCLUSIVE: nothing was compared, so nothing is proven about the 48,211 predictions."
    )


def test_summary_of_a_sweep_and_an_exhaustive_job():
    items = [_comparison(f"u{i}", [0.1 * i, 1.0 - 0.1 * i]) for i in range(4)]
    swept = [dataclasses.replace(c, batch_size=8, sweep=True) for c in items[:2]]
    acc = _acc(*items, *swept, SweepTiming(8, 2, 0.5), SweepTiming(16, 0, 0.0))
    settings = reconciliation_summary.SummarySettings(ATOL, RTOL, 0.5, 4, reconcile_min=3)
    summary = reconciliation_summary.summarize(acc, settings, 4, 4)
    assert summary["exhaustive"] is True and summary["verdict"] == "pass"
    assert summary["effective_fraction"] == 0.75
    assert summary["mismatch_rate_upper"] == 0.0  # every prediction compared: observed, exact
    assert summary["by_reference"]["single"]["mismatch_rate_upper"] == 0.0
    assert list(summary["by_batch_size"]) == ["4"] and summary["compared"] == 4
    assert summary["by_batch_size"]["4"]["compared"] == 4
    assert summary["sweep"]["8"] | {"abs_diff_quantiles": None} == {
        "images": 2,
        "seconds": 0.5,
        "images_per_second": 4.0,
        **reconciliation_summary.GroupStats().summary(),
        "compared": 2,
        "identical": 2,
        "max_abs_diff": 0.0,
        "top1_agreement": 1.0,
        "mismatch_rate_upper": bounds.clopper_pearson_upper(0, 2),
        "top1_flip_rate_upper": bounds.clopper_pearson_upper(0, 2),
        "abs_diff_quantiles": None,
    }
    assert summary["sweep"]["16"]["images_per_second"] is None
    assert set(summary["abs_diff_histogram"]["by_series"]) == {
        "single · batch 4",
        "sweep · batch 8",
        "sweep · batch 16",
    }
    assert summary["abs_diff_histogram"]["by_series"]["sweep · batch 8"][0] == 2
    sampled = reconciliation_summary.summarize(acc, settings, 8, 8)
    assert sampled["exhaustive"] is False and sampled["effective_fraction"] == 0.5
    assert sampled["mismatch_rate_upper"] == pytest.approx(bounds.clopper_pearson_upper(0, 4))
    assert reconciliation_summary.summarize(acc, settings)["effective_fraction"] is None


def _mismatch(uri, reference, diff, **extra):
    base = np.float32([0.2, 0.8])
    result = tolerance.compare_scores(base + np.float32([diff, -diff]), base, ATOL, RTOL)
    return ElementComparison.of(uri, 4, 1, reference, result, batch_scores=base, **extra)


def test_summary_record_reports_every_field_under_its_name():
    """summary.json's fields, by name and value: the settings it was judged by, the serving
    evidence, the probes, the histogram, the worst elements worst first, and headline bounds
    that are the weakest reference's."""
    singles = [_comparison(f"s{i}", [0.1 * i, 1.0 - 0.1 * i]) for i in range(6)]
    specs = {"batch_preprocessing": SPEC_A, "serving_preprocessing": SPEC_B}
    serving = [
        _mismatch("v0", SERVING, 0.3, **specs),
        _mismatch("v1", SERVING, 0.01, **specs),
        _comparison("v2", [0.5, 0.5], SERVING, **specs),
    ]
    probe = ProbeResult({"repeat": ProbeDiff(0.0, False, False, True, False)})
    acc = _acc(*singles, *serving, probe)
    warning = {"kind": "training_mode_layer", "layer": "bn"}
    settings = reconciliation_summary.SummarySettings(
        ATOL, 2 * RTOL, 0.25, 4, reconcile_min=7, model_warnings=(warning,)
    )
    summary = reconciliation_summary.summarize(acc, settings, matched=40, predictions=40)

    assert set(summary) == {
        "compared", "identical", "within_tolerance", "mismatch", "non_finite", "reference_error",
        "top1_agreement", "max_abs_diff", "abs_diff_quantiles", "mismatch_rate_upper",
        "top1_flip_rate_upper", "atol", "rtol", "fraction", "reconcile_min", "matched",
        "predictions", "exif_oriented", "effective_fraction", "confidence", "exhaustive",
        "batch_size",
        "verdict", "constant_output", "by_batch_size", "by_reference", "sweep", "diagnosis",
        "model_warnings", "preprocessing", "probes", "worst", "abs_diff_histogram", "guarantee",
        "worst_reference", "skipped", "divergence",
    }  # fmt: skip
    assert summary["divergence"] == []  # no layer profile was accumulated
    settings_seen = [summary[k] for k in ("atol", "rtol", "fraction", "reconcile_min")]
    assert settings_seen == [ATOL, 2 * RTOL, 0.25, 7]
    assert (summary["matched"], summary["predictions"], summary["batch_size"]) == (40, 40, 4)
    assert summary["model_warnings"] == [warning] and summary["model_warnings"][0] is not warning
    assert summary["preprocessing"] == {"batch": SPEC_A, "serving": SPEC_B,
                                        "input_max_abs_diff": None}  # fmt: skip
    assert summary["probes"]["repeat"] == {"probes": 1, "beyond_tolerance": 0, "top1_changed": 0,
                                           "bitwise": 1, "non_finite": 0, "max": 0.0}  # fmt: skip
    assert set(summary["probes"]) == set(diagnosis.PROBE_NAMES)
    histogram = summary["abs_diff_histogram"]
    assert set(histogram) == {"bin_upper_edges", "counts", "by_series"}
    assert (
        len(histogram["bin_upper_edges"])
        == len(histogram["counts"])
        == tolerance.LogHistogram.NUM_BINS
    )
    assert sum(histogram["counts"]) == 9
    # Worst first: the larger serving mismatch, then the smaller one, then the rest.
    assert [w["uri"] for w in summary["worst"][:2]] == ["v0", "v1"]
    # The serving disagreement is diagnosed with what differs in the preprocessing.
    (cause,) = [d for d in summary["diagnosis"] if d["cause"] == "preprocessing_mismatch"]
    assert (
        "preprocessing specs differ (normalization: batch 'symmetric' vs serving 'unit')"
        in (cause["evidence"])
    )
    # The headline bounds are the serving reference's (2 of 3 failed), not the pooled 2 of 9.
    assert (
        summary["mismatch_rate_upper"]
        == summary["by_reference"]["serving"]["mismatch_rate_upper"]
        == pytest.approx(bounds.clopper_pearson_upper(2, 3))
    )
    assert (
        summary["top1_flip_rate_upper"]
        == summary["by_reference"]["serving"]["top1_flip_rate_upper"]
    )


def test_summary_of_nothing_compared_bounds_nothing():
    summary = reconciliation_summary.summarize(
        _acc(), reconciliation_summary.SummarySettings(ATOL, RTOL, 0.1, 8)
    )
    assert summary["verdict"] == "inconclusive" and summary["compared"] == 0
    assert summary["mismatch_rate_upper"] == summary["top1_flip_rate_upper"] == 1.0
    assert summary["worst"] == [] and summary["by_reference"] == {}


def test_small_helpers_of_the_summary():
    assert bounds.finite_or_none(None) is None
    assert bounds.finite_or_none(float("inf")) is None
    assert bounds.finite_or_none(0.5) == 0.5
    a = np.float32([0.1, 0.9])
    assert reconciliation_summary._same_scores(a, a + np.float32(1e-6), atol=1e-5, rtol=0.0)
    assert not reconciliation_summary._same_scores(a, a + np.float32(1e-4), atol=1e-5, rtol=0.0)
    assert not reconciliation_summary._same_scores(
        a, np.float32([0.1, 0.9, 0.0]), atol=1.0, rtol=1.0
    )
    both = reconciliation_summary.ProbeStats(1, 2, 3, 4, 5, 0.5).merged(
        reconciliation_summary.ProbeStats(10, 20, 30, 40, 50, 0.25)
    )
    assert both == reconciliation_summary.ProbeStats(11, 22, 33, 44, 55, 0.5)
    with pytest.raises(TypeError, match="cannot summarise str"):
        reconciliation_summary.accumulate(
            reconciliation_summary.Accumulator(), "neither", ATOL, RTOL
        )


def test_a_comparison_without_a_difference_ranks_worst_and_reports_none():
    broken = _comparison("nan", [0.1, 0.9])
    broken = dataclasses.replace(broken, max_abs_diff=None, status=tolerance.NON_FINITE)
    far = _mismatch("far", SINGLE, 0.4)
    assert reconciliation_summary.rank(broken) > reconciliation_summary.rank(far)
    group = reconciliation_summary.GroupStats()
    group.add(broken)
    assert group.max_abs_diff == float("inf") and group.summary()["max_abs_diff"] is None


def test_exhaustive_rates_are_the_observed_ones():
    group = reconciliation_summary.GroupStats()
    for c in [_mismatch("a", SINGLE, 0.4), _mismatch("b", SINGLE, 0.01)] + [
        _comparison(f"c{i}", [0.1, 0.9]) for i in range(2)
    ]:
        group.add(c)
    exact = group.summary(exhaustive=True)
    assert exact["mismatch_rate_upper"] == 0.5  # 2 of 4 failed
    assert exact["top1_flip_rate_upper"] == 0.25  # 1 of 4 changed its top-1
    assert exact["top1_agreement"] == group.summary()["top1_agreement"] == 0.75


def test_accumulate_keeps_the_ten_worst_without_their_scores():
    rng = np.random.default_rng(0)
    diffs = rng.permutation(np.linspace(0.001, 0.3, 14))
    acc = _acc(*(_mismatch(f"m{i:02d}", SINGLE, float(d)) for i, d in enumerate(diffs)))
    kept = sorted((c for _, c in acc.worst), key=lambda c: c.max_abs_diff)
    expected = sorted(diffs)[-reconciliation_summary.WORST_KEPT :]
    assert [c.max_abs_diff for c in kept] == pytest.approx(expected, rel=1e-5)
    assert all(c.batch_scores is None for c in kept)  # the summary keeps records, not vectors
    # A new entry replaces the smallest kept one, wherever the heap keeps the others.
    ascending = [
        _mismatch(f"a{i}", SINGLE, 0.01 * (i + 1)) for i in range(reconciliation_summary.WORST_KEPT)
    ]
    acc = _acc(*ascending, _mismatch("between", SINGLE, 0.015))
    assert sorted(c.uri for _, c in acc.worst) == sorted(
        ["between"] + [f"a{i}" for i in range(1, 10)]
    )
    # The first scores are kept as float32, whatever the caller passed.
    wide = dataclasses.replace(
        _comparison("f", [0.25, 0.75]), batch_scores=np.float64([0.25, 0.75])
    )
    assert _acc(wide).first_scores.dtype == np.float32


def test_one_accumulator_keeps_the_largest_input_difference_in_any_order():
    specs = {"batch_preprocessing": SPEC_A, "serving_preprocessing": SPEC_B}
    small = dataclasses.replace(
        _comparison("a", [0.1, 0.9], SERVING, **specs), input_max_abs_diff=0.5
    )
    large = dataclasses.replace(small, uri="b", input_max_abs_diff=0.75)
    assert _acc(large, small).preprocessing["input_max_abs_diff"] == 0.75
    assert _acc(small, large).preprocessing["input_max_abs_diff"] == 0.75


def test_preprocessing_evidence_names_fields_either_side_lacks():
    batch = json.dumps({"image_size": [8, 8], "normalization": "unit"})
    serving = json.dumps({"image_size": [9, 9], "crop": "center", "normalization": "unit"})
    words = reconciliation_summary.preprocessing_evidence(
        {"batch": batch, "serving": serving, "input_max_abs_diff": None}
    )
    assert words == (
        "preprocessing specs differ (crop: batch None vs serving 'center'; "
        "image_size: batch [8, 8] vs serving [9, 9])"
    )


def test_worst_records_carry_their_thumbnail():
    record = reconciliation_summary._worst_record(
        dataclasses.replace(_comparison("t", [0.1, 0.9]), thumbnail="data:x")
    )
    assert record["thumbnail"] == "data:x"
    assert "thumbnail" not in reconciliation_summary._worst_record(_comparison("u", [0.1, 0.9]))


def _skew_summary(exhaustive: bool) -> dict:
    """36 sampled images: every single comparison agrees, every serving one mismatches."""
    skewed = np.asarray([0.9, 0.1], np.float32)
    items = []
    for i in range(36):
        scores = [0.1 + 0.02 * i, 0.9 - 0.02 * i]
        items.append(_comparison(f"u{i}", scores))
        result = tolerance.compare_scores(np.asarray(scores, np.float32), skewed, ATOL, RTOL)
        items.append(ElementComparison.of(f"u{i}", 4, 0, SERVING, result))
    settings = reconciliation_summary.SummarySettings(ATOL, RTOL, 1.0 if exhaustive else 0.01, 4)
    predictions = 36 if exhaustive else 3600
    return reconciliation_summary.summarize(_acc(*items), settings, predictions, predictions)


def test_the_headline_states_the_worst_references_rate_and_names_it():
    summary = _skew_summary(exhaustive=True)
    assert summary["verdict"] == "fail" and summary["worst_reference"] == "serving"
    assert summary["by_reference"]["serving"]["mismatch_rate_upper"] == 1.0
    assert summary["guarantee"] == (
        "FAIL: 0 of 36 sampled agree with the serving reference (36 mismatch, 0 non-finite), "
        "36 of 36 with the single reference; every one of the 36 predictions was compared, so "
        "exactly 100.0% of them differ beyond tolerance from the serving reference (no "
        "sampling, no estimate)."
    )
    sampled = _skew_summary(exhaustive=False)
    assert sampled["guarantee"] == (
        "FAIL: 0 of 36 sampled agree with the serving reference (36 mismatch, 0 non-finite), "
        "36 of 36 with the single reference; with 95% confidence at most 100.0% of the 3,600 "
        "predictions differ beyond tolerance from the serving reference."
    )
