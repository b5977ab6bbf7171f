"""Exact values of the run comparison's pure maths on small hand-built inputs: the summary's
verdict, cause, evidence sentences and tables, drift, one key's element record, the packed
records of the join, the accumulator, and what changed between two run.json records. Each test
pins whole dicts and sentences, so a wrong comparison, constant, field name or word fails it
(written from the mutants the fast tests left alive). No pipeline, no model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from transforms.core import run_changes, run_diff, run_diff_summary
from transforms.core.bounds import clopper_pearson_upper
from transforms.core.tolerance import LogHistogram

ATOL, RTOL = 1e-5, 1e-4


def _acc(**counts) -> dict:
    acc = run_diff.empty_accumulator()
    acc["counts"].update(counts)
    return acc


def _summarize(acc, changes=(), fraction=1.0, runs_known=True) -> dict:
    return run_diff_summary.summarize(acc, ATOL, RTOL, fraction, list(changes), runs_known)


def _change(what, kind):
    return {"what": what, "kind": kind, "baseline": "1", "candidate": "2"}


def _psi_and_js(p: list[float], q: list[float]) -> tuple[float, float]:
    """The textbook formulas, written apart from numpy: PSI with empty shares smoothed to 1e-4,
    Jensen-Shannon divergence in bits."""
    psi = sum(
        (max(b, 1e-4) - max(a, 1e-4)) * math.log(max(b, 1e-4) / max(a, 1e-4))
        for a, b in zip(p, q, strict=True)
    )
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x):
        return sum(a * math.log2(a / c) for a, c in zip(x, m, strict=True) if a > 0)

    return psi, (kl(p) + kl(q)) / 2


def test_a_numeric_change_summary_in_full():
    acc = _acc(
        identical=1000,
        within_tolerance=200,
        mismatch=30,
        non_finite=5,
        only_baseline=7,
        only_candidate=3,
    )
    acc["non_finite_same"] = 2
    acc["duplicate_keys"] = 4
    acc["flips"] = {(0, 1): 5, (1, 0): 5, (2, 3): 9, **{(10 + i, 20 + i): 1 for i in range(9)}}
    acc["labels"] = {0: "cat", 1: "dog", 2: "eel"}
    acc["top1_baseline"] = {0: 600, 1: 635}
    acc["top1_candidate"] = {0: 610, 1: 620, 2: 5}
    acc["basis"] = {"scores": 1200, "top_k": 1234}
    acc["max_abs_diff"] = 0.5
    for value, n in ((0.0, 1000), (1e-6, 200), (0.5, 33)):
        acc["hist"][LogHistogram.bin_of(value)] = n
    acc["by_batch_shape"] = {(8, 8): [1000, 100], (8, 32): [235, 133]}
    acc["by_position"] = {3: [235, 33], 0: [600, 0], None: [0, 0], 1: [400, 200]}
    changes = [_change(f"package_versions.p{i}", "engine") for i in range(9)]
    summary = _summarize(acc, changes, fraction=0.25)
    histogram = summary.pop("abs_diff_histogram")
    assert histogram["counts"] == acc["hist"]
    assert histogram["bin_upper_edges"][:3] == [0.0, 1e-12, 10**-11.75]
    assert len(histogram["bin_upper_edges"]) == LogHistogram.NUM_BINS == 62
    assert histogram["bin_upper_edges"][-1] == 1000.0
    drift = summary.pop("drift")
    psi, js = _psi_and_js([600 / 1235, 635 / 1235, 0], [610 / 1235, 620 / 1235, 5 / 1235])
    assert drift.pop("psi") == pytest.approx(psi, rel=1e-12)
    assert drift.pop("js_divergence") == pytest.approx(js, rel=1e-12)
    assert drift == {
        "metric": "psi",
        "threshold": 0.1,
        "drifted": False,
        "top1_baseline": {"dog": 635, "cat": 600},
        "top1_candidate": {"dog": 620, "cat": 610, "eel": 5},
    }
    assert list(drift["top1_candidate"]) == ["dog", "cat", "eel"]  # most common first
    shape = (
        "100 of 1,000 keys scored at the same batch size in both differ; "
        "133 of 235 keys scored at different batch sizes differ; "
        "differences sit only at candidate batch positions 1, 3"
    )
    assert summary == {
        "verdict": "fail",
        "verdict_reason": "33 keys differ beyond tolerance without a model or preprocessing change",
        "cause": "numeric",
        "evidence": [
            "2 keys have NaN or Inf scores in both runs at the same classes: the runs agree on "
            "them, but the model gives them no finite score",
            "same model and preprocessing; only "
            + ", ".join(f"package_versions.p{i}" for i in range(8))
            + " ... changed: expect ulp-level differences",
            "finding: 28 top-1 flips and 33 keys beyond tolerance under a numeric-only change",
            shape,
        ],
        "changes": changes,
        "coverage": {
            "baseline": 1242,
            "candidate": 1238,
            "both": 1235,
            "only_baseline": 7,
            "only_candidate": 3,
        },
        "compared": 1235,
        "identical": 1000,
        "within_tolerance": 200,
        "mismatch": 30,
        "non_finite": 5,
        "only_baseline": 7,
        "only_candidate": 3,
        "ambiguous": 0,
        "duplicate_keys": 4,
        "non_finite_same": 2,
        "ambiguous_keys": [],
        "basis": "mixed",
        "basis_note": "1,234 keys compared on top-k only (one side lacks scores)",
        "top1_flips": 28,
        "top1_agreement": (1235 - 28) / 1235,
        "flips": [
            {"from": 2, "to": 3, "from_label": "eel", "to_label": "3", "count": 9},
            {"from": 0, "to": 1, "from_label": "cat", "to_label": "dog", "count": 5},
            {"from": 1, "to": 0, "from_label": "dog", "to_label": "cat", "count": 5},
            *(
                {
                    "from": 10 + i,
                    "to": 20 + i,
                    "from_label": str(10 + i),
                    "to_label": str(20 + i),
                    "count": 1,
                }
                for i in range(7)
            ),
        ],
        "max_abs_diff": 0.5,
        "abs_diff_quantiles": {"p50": 0.0, "p90": 1e-06, "p99": 0.5, "max": 0.5},
        "atol": ATOL,
        "rtol": RTOL,
        "sample_fraction": 0.25,
        "confidence": 0.95,
        "mismatch_rate": 33 / 1235,
        "top1_flip_rate": 28 / 1235,
        "mismatch_rate_upper": clopper_pearson_upper(33, 1235),
        "top1_flip_rate_upper": clopper_pearson_upper(28, 1235),
        "by_batch_shape": {
            "8->32": {"compared": 235, "differ": 133},
            "8->8": {"compared": 1000, "differ": 100},
        },
        "by_position": {
            "0": {"compared": 600, "differ": 0},
            "1": {"compared": 400, "differ": 200},
            "3": {"compared": 235, "differ": 33},
            "None": {"compared": 0, "differ": 0},
        },
        "batch_shape_evidence": shape,
        "worst": [],
    }
    assert list(summary["by_position"]) == ["0", "1", "3", "None"]  # None last


def test_nothing_in_common_states_no_statistic():
    acc = _acc(only_baseline=2, only_candidate=1)
    acc["top1_baseline"] = {}
    summary = _summarize(acc, fraction=0.5)
    assert {
        k: summary[k] for k in ("verdict", "verdict_reason", "cause", "basis", "basis_note")
    } == {
        "verdict": "inconclusive",
        "verdict_reason": "the runs have no keys in common: nothing was compared",
        "cause": "no_common_keys",
        "basis": "scores",
        "basis_note": "full score vectors compared",
    }
    assert summary["coverage"] == {
        "baseline": 2,
        "candidate": 1,
        "both": 0,
        "only_baseline": 2,
        "only_candidate": 1,
    }
    for name in (
        "max_abs_diff",
        "top1_agreement",
        "mismatch_rate",
        "top1_flip_rate",
        "mismatch_rate_upper",
        "top1_flip_rate_upper",
        "batch_shape_evidence",
    ):
        assert summary[name] is None, name
    assert summary["abs_diff_quantiles"] == {"p50": None, "p90": None, "p99": None, "max": None}
    assert summary["drift"]["psi"] is None and summary["drift"]["drifted"] is False


def _verdict(acc, changes=(), runs_known=True):
    s = _summarize(acc, changes, runs_known=runs_known)
    return s["verdict"], s["verdict_reason"], s["cause"], s["evidence"]


UNKNOWN_KEYS = (
    "1,234 keys hold duplicate records with different scores in one run, and were not compared"
)


def test_every_verdict_in_words():
    assert _verdict(_acc(ambiguous=1234)) == ("inconclusive", UNKNOWN_KEYS, "none", [])
    assert _verdict(_acc(identical=3, ambiguous=1234)) == (
        "inconclusive",
        "every compared key agrees within tolerance, but " + UNKNOWN_KEYS,
        "none",
        [],
    )
    assert _verdict(_acc(identical=3)) == (
        "pass",
        "every compared key agrees within tolerance",
        "none",
        [],
    )
    model = [_change("model_digest", "model"), _change("preprocessing.x", "preprocessing")]
    assert _verdict(_acc(mismatch=1234), model) == (
        "changed",
        "1,234 keys differ beyond tolerance, as expected from a model change",
        "model_change",
        ["the model digest differs: differences are expected; report, not failure"],
    )
    prep = [
        _change("preprocessing.normalization", "preprocessing"),
        _change("options.batch_size", "batch_shape"),
        _change("preprocessing.image_size", "preprocessing"),
    ]
    assert _verdict(_acc(mismatch=1, identical=1), prep) == (
        "changed",
        "1 keys differ beyond tolerance, as expected from a preprocessing change",
        "preprocessing_change",
        ["the preprocessing spec differs (preprocessing.normalization, preprocessing.image_size)"],
    )
    assert _verdict(
        _acc(within_tolerance=1234), [_change("options.batch_size", "batch_shape")]
    ) == (
        "pass",
        "every compared key agrees within tolerance",
        "numeric",
        [
            "same model and preprocessing; only options.batch_size changed: expect ulp-level "
            "differences"
        ],
    )


def test_numeric_evidence_lists_eight_changes_and_finds_any_difference():
    eight = [_change(f"environment.f{i}", "hardware") for i in range(8)]
    listed = ", ".join(f"environment.f{i}" for i in range(8))
    assert _verdict(_acc(identical=1, mismatch=5), eight)[3] == [
        f"same model and preprocessing; only {listed} changed: expect ulp-level differences",
        "finding: 0 top-1 flips and 5 keys beyond tolerance under a numeric-only change",
    ]
    flipped = _acc(within_tolerance=3)
    flipped["flips"] = {(0, 1): 2}
    assert _verdict(flipped, eight[:1])[3] == [
        "same model and preprocessing; only environment.f0 changed: expect ulp-level differences",
        "finding: 2 top-1 flips and 0 keys beyond tolerance under a numeric-only change",
    ]


def _shaped(**counts) -> dict:
    acc = _acc(**counts)
    acc["by_batch_shape"] = {(8, 8): [3, 1], (4, 8): [2, 2]}
    acc["by_position"] = {0: [2, 0], 1: [3, 3]}
    return acc


SHAPE = (
    "1 of 3 keys scored at the same batch size in both differ; 2 of 2 keys scored at different "
    "batch sizes differ; differences sit only at candidate batch positions 1"
)


def test_causes_without_a_change_and_where_the_batch_shape_is_told():
    assert _verdict(_shaped(identical=2, mismatch=1234, non_finite=1)) == (
        "fail",
        "1,235 keys differ beyond tolerance without a model or preprocessing change",
        "nondeterminism",
        [
            "nothing recorded in run.json differs, yet 1,235 keys are not bitwise equal "
            "(1,235 beyond tolerance): the job is not deterministic",
            SHAPE,
        ],
    )
    assert _verdict(_shaped(identical=2, within_tolerance=3), runs_known=False) == (
        "pass",
        "every compared key agrees within tolerance",
        "unknown",
        ["a run.json is missing: what changed between the runs is unknown"],
    )
    numeric = [_change("environment.cpu_model", "hardware")]
    assert _verdict(_shaped(identical=2, within_tolerance=3), numeric)[3] == [
        "same model and preprocessing; only environment.cpu_model changed: expect ulp-level "
        "differences",
        SHAPE,
    ]
    model = [_change("model_digest", "model")]
    assert _verdict(_shaped(mismatch=5), model)[3] == [
        "the model digest differs: differences are expected; report, not failure"
    ]
    same_nan = _acc(identical=4, non_finite=1234)
    same_nan["non_finite_same"] = 1234
    assert _verdict(same_nan) == (
        "pass",
        "every compared key agrees within tolerance",
        "non_finite_scores",
        [
            "1,234 keys have NaN or Inf scores in both runs at the same classes: the runs agree "
            "on them, but the model gives them no finite score"
        ],
    )


def _shape_words(by_batch_shape, by_position):
    acc = _acc(identical=1)
    acc["by_batch_shape"], acc["by_position"] = by_batch_shape, by_position
    return _summarize(acc)["batch_shape_evidence"]


def test_batch_shape_evidence_in_words():
    assert _shape_words({(8, 8): [1234, 0], (4, 8): [5, 0]}, {0: [1239, 0]}) is None
    assert _shape_words({(8, 32): [4, 4]}, {0: [4, 4]}) == (
        "4 of 4 keys scored at different batch sizes differ"
    )
    assert _shape_words({(8, 8): [1234, 1000]}, {0: [0, 0], 1: [1234, 1000]}) == (
        "1,000 of 1,234 keys scored at the same batch size in both differ"
    )
    four = {p: [2, 1] for p in (7, 2, 5, 3)} | {0: [3, 0], None: [1, 1]}
    assert _shape_words({(2, 8): [1, 1], (8, 8): [1234, 4]}, four) == (
        "4 of 1,234 keys scored at the same batch size in both differ; 1 of 1 keys scored at "
        "different batch sizes differ; differences sit only at candidate batch positions 2, 3, 5, 7"
    )
    # Shapes of one side add up; a side where nothing differs is still told.
    assert _shape_words(
        {(8, 8): [3, 1], (16, 16): [4, 1], (8, 32): [5, 1], (4, 2): [6, 1]}, {}
    ) == (
        "2 of 7 keys scored at the same batch size in both differ; 2 of 11 keys scored at "
        "different batch sizes differ"
    )
    assert _shape_words({(8, 8): [5, 0], (8, 32): [2, 2]}, {}) == (
        "0 of 5 keys scored at the same batch size in both differ; 2 of 2 keys scored at "
        "different batch sizes differ"
    )
    assert _shape_words({(8, 8): [2, 2], (8, 32): [5, 0]}, {}) == (
        "2 of 2 keys scored at the same batch size in both differ; 0 of 5 keys scored at "
        "different batch sizes differ"
    )
    five = four | {9: [1, 1]}
    assert _shape_words({(8, 8): [10, 5]}, five) == (
        "5 of 10 keys scored at the same batch size in both differ"
    )


def test_worst_keys_most_severe_first_and_no_identical_one():
    acc = _acc()
    for key, status, diff in (
        ("a", "identical", 0.0),
        ("b", "within_tolerance", 0.01),
        ("c", "mismatch", 0.001),
        ("d", "non_finite", None),
        ("e", "mismatch", 0.001),
    ):
        run_diff.add_element(acc, _element(key, status, diff))
    assert [r["key"] for r in _summarize(acc)["worst"]] == ["d", "e", "c", "b"]


def test_drift_measures_exactly():
    assert run_diff_summary.drift({}, {}) == {"psi": None, "js_divergence": None}
    assert run_diff_summary.drift({0: 0}, {0: 3}) == {"psi": None, "js_divergence": None}
    assert run_diff_summary.drift({0: 3}, {0: 0}) == {"psi": None, "js_divergence": None}
    got = run_diff_summary.drift({0: 3, 1: 1}, {1: 1, 2: 3})
    psi, js = _psi_and_js([0.75, 0.25, 0.0], [0.0, 0.25, 0.75])
    assert got["psi"] == pytest.approx(psi, rel=1e-12)
    assert got["js_divergence"] == pytest.approx(js, rel=1e-12)
    assert got["psi"] == pytest.approx(2 * 0.7499 * math.log(0.75 / 1e-4), rel=1e-12)
    assert got["js_divergence"] == pytest.approx(0.75, rel=1e-12)


def test_drift_is_called_at_the_threshold_itself(monkeypatch):
    acc = _acc(identical=4)
    acc["top1_baseline"], acc["top1_candidate"] = {0: 3, 1: 1}, {0: 1, 1: 3}
    psi = run_diff_summary.drift(acc["top1_baseline"], acc["top1_candidate"])["psi"]
    monkeypatch.setattr(run_diff_summary, "PSI_THRESHOLD", psi)
    assert _summarize(acc)["drift"]["drifted"] is True
    monkeypatch.setattr(run_diff_summary, "PSI_THRESHOLD", psi * 1.0001)
    assert _summarize(acc)["drift"]["drifted"] is False


def test_basis_when_every_key_is_top_k():
    acc = _acc(identical=2)
    acc["basis"] = {"scores": 0, "top_k": 2}
    summary = _summarize(acc)
    assert (summary["basis"], summary["basis_note"]) == (
        "top_k",
        "compared on the top-k classes both runs kept (no full score vectors: run with "
        "--write_scores or --output_format tfrecord for a full comparison)",
    )


# --- one key: the packed records of the join and the element record ----------------------------

TOP = [{"index": 1, "label": "dog", "score": 0.5}, {"index": 0, "label": "cat", "score": 0.25}]


def _prediction(**fields) -> dict:
    record = {"key": "k", "uri": "gs://b/k.png", "top_k": TOP, "batch_size": 8, "position": 3}
    return record | {"batch_id": "b1"} | fields


def test_pack_and_unpack_exactly():
    full = _prediction(scores=[0.25, 0.5, None], non_finite=True)
    packed = run_diff.pack(full)
    assert packed == (
        "gs://b/k.png",
        np.array([0.25, 0.5, np.nan], np.float32).tobytes(),
        ((1, "dog", 0.5), (0, "cat", 0.25)),
        8,
        3,
        "b1",
        True,
    )
    record = run_diff.unpack("k", packed)
    scores = record.pop("scores")
    assert scores.dtype == np.float32 and np.array_equal(
        scores, [0.25, 0.5, np.nan], equal_nan=True
    )
    assert record == {
        "key": "k",
        "uri": "gs://b/k.png",
        "top_k": TOP,
        "batch_size": 8,
        "position": 3,
        "batch_id": "b1",
        "non_finite": True,
    }
    bare = {"key": "k2", "top_k": TOP}
    assert run_diff.pack(bare) == (
        "k2",
        None,
        ((1, "dog", 0.5), (0, "cat", 0.25)),
        None,
        None,
        None,
        False,
    )
    assert run_diff.unpack("k2", run_diff.pack(bare)) == {
        "key": "k2",
        "uri": "k2",
        "top_k": TOP,
        "batch_size": None,
        "position": None,
        "batch_id": None,
    }
    assert (
        run_diff.pack(_prediction(scores=[1.0, 2.0]))[1] == np.array([1, 2], np.float32).tobytes()
    )
    array = np.array([3.0, 4.0], np.float32)
    assert run_diff.pack(_prediction(scores=array))[1] == array.tobytes()


def _packed(scores, position=3, **fields):
    return run_diff.pack(_prediction(scores=scores, position=position, **fields))


def test_compare_key_duplicates_and_ambiguous_keys():
    one = _packed([0.25, 0.5])
    ambiguous = run_diff.compare_key("k", [one, _packed([0.5, 0.25])], [one], ATOL, RTOL)
    assert ambiguous == {
        "key": "k",
        "uri": "gs://b/k.png",
        "status": "ambiguous",
        "baseline_records": 2,
        "candidate_records": 1,
        "note": "the baseline holds 2 records of this key with different scores; not compared",
    }
    both = run_diff.compare_key(
        "k", [one, _packed([0.5, 0.25])], [one, one, _packed([0.0, 0.5])], ATOL, RTOL
    )
    assert both["note"] == (
        "the baseline holds 2 records and the candidate holds 3 records of this key with "
        "different scores; not compared"
    )
    only_candidate = run_diff.compare_key("k", [], [one, _packed([1.0, 0.5], uri="gs://c")], 0, 0)
    assert only_candidate["uri"] == "gs://b/k.png" and only_candidate["candidate_records"] == 2
    # Duplicates that agree on the scores (wherever they sat in a batch) are one prediction.
    record = run_diff.compare_key("k", [one, _packed([0.25, 0.5], position=5)], [one] * 3, 0, 0)
    assert (record["status"], record["duplicates"]) == ("identical", 3)
    near = _packed([0.25, 0.5 + 2**-20])
    assert run_diff.compare_key("k", [one], [near], 2**-20, 0)["status"] == "within_tolerance"
    assert run_diff.compare_key("k", [one], [near], 0, 2**-19)["status"] == "within_tolerance"
    assert run_diff.compare_key("k", [one], [near], 0, 0)["status"] == "mismatch"
    assert run_diff.compare_key("k", [one], [near], 2**-20, 0)["basis"] == "scores"
    forced = run_diff.compare_key("k", [one], [near], 0, 0, top_k_only=True)
    assert (forced["basis"], forced["status"]) == ("top_k", "identical")
    assert run_diff.compare_key("k", [one], [], 0, 0)["status"] == "only_baseline"
    # Another top-k is another prediction; another batch size is not.
    other_top = run_diff.pack(_prediction(scores=[0.25, 0.5], top_k=TOP[:1]))
    assert run_diff.compare_key("k", [one, other_top], [one], 0, 0)["status"] == "ambiguous"
    other_size = _packed([0.25, 0.5], batch_size=32, batch_id="b9")
    assert run_diff.compare_key("k", [one, other_size], [one], 0, 0)["status"] == "identical"
    assert "duplicates" not in run_diff.compare_key("k", [one], [one], 0, 0)
    assert run_diff.compare_key("k", [], [one], 0, 0) == {
        "key": "k",
        "uri": "gs://b/k.png",
        "status": "only_candidate",
        "top1_candidate": 1,
        "top1_label_candidate": "dog",
        "candidate_batch_size": 8,
        "candidate_position": 3,
        "candidate_batch_id": "b1",
    }


def _top_k(*entries):
    return {"key": "k", "top_k": [{"index": i, "label": f"c{i}", "score": s} for i, s in entries]}


def _provenance(side):
    return {f"{side}_batch_size": None, f"{side}_position": None, f"{side}_batch_id": None}


def test_top_k_comparison_exactly():
    base = _top_k((1, 0.5), (2, 0.25), (0, 0.125))
    near = _top_k((1, 0.5), (0, 0.125 + 1e-6), (3, 0.0625))
    assert run_diff.compare_records("k", base, near, ATOL, RTOL) == {
        "key": "k",
        "uri": "k",
        "top1_baseline": 1,
        "top1_candidate": 1,
        "top1_label_baseline": "c1",
        "top1_label_candidate": "c1",
        "top1_match": True,
        **_provenance("baseline"),
        **_provenance("candidate"),
        "basis": "top_k",
        "top_k_common": 2,
        "max_abs_diff": pytest.approx(1e-6),
        "max_rel_diff": pytest.approx(1e-6 / 0.125),
        "status": "within_tolerance",
    }

    def status(b, c, atol=ATOL, rtol=RTOL):
        got = run_diff.compare_records("k", _top_k(*b), _top_k(*c), atol, rtol)
        return {k: got[k] for k in ("top_k_common", "max_abs_diff", "max_rel_diff", "status")}

    assert status([(1, 0.5)], [(2, 0.5)]) == {
        "top_k_common": 0,
        "max_abs_diff": None,
        "max_rel_diff": None,
        "status": "mismatch",
    }
    # A shorter list in the same order, the same scores: identical.
    assert status([(1, 0.5), (2, 0.25), (0, 0.125)], [(1, 0.5), (2, 0.25)])["status"] == "identical"
    # The same scores in another order beyond the shorter list's head: not identical.
    swapped = status([(1, 0.5), (2, 0.25), (0, 0.25)], [(1, 0.5), (0, 0.25), (2, 0.25)])
    assert swapped == {
        "top_k_common": 3,
        "max_abs_diff": 0.0,
        "max_rel_diff": 0.0,
        "status": "within_tolerance",
    }
    # Exactly at the tolerance is within it; a hair beyond is not.
    assert (
        status([(1, 0.5)], [(1, 0.5 + 2**-20)], atol=2**-20, rtol=0)["status"] == "within_tolerance"
    )
    assert status([(1, 0.5)], [(1, 0.5 + 2**-19)], atol=2**-20, rtol=0)["status"] == "mismatch"
    assert (
        status([(1, 0.5)], [(1, 0.5 + 2**-20)], atol=0, rtol=2**-19)["status"] == "within_tolerance"
    )
    assert status([(1, 2.0)], [(1, 2.0 + 2**-18)], atol=0, rtol=2**-19)["status"] == (
        "within_tolerance"
    )
    # Another top-1 within tolerance is a mismatch.
    assert status([(1, 0.5), (2, 0.5)], [(2, 0.5), (1, 0.5)])["status"] == "mismatch"
    assert status([(1, 0.0)], [(1, 1e-30)], atol=0, rtol=0)["max_rel_diff"] == pytest.approx(
        1e-30 / np.finfo(np.float32).tiny
    )


def _scored(scores, **fields):
    return {"key": "k", "top_k": [], "scores": np.array(scores, np.float32)} | fields


def test_full_score_comparison_and_non_finite_scores():
    def compared(b, c, **kw):
        got = run_diff.compare_records("k", _scored(b), _scored(c, **kw), ATOL, RTOL)
        return {
            k: got.get(k)
            for k in ("status", "max_abs_diff", "max_rel_diff", "same_non_finite", "note")
        }

    assert compared([np.nan, 1.0], [np.nan, 1.0]) == {
        "status": "non_finite",
        "max_abs_diff": None,
        "max_rel_diff": None,
        "same_non_finite": True,
        "note": None,
    }
    assert compared([np.nan, 1.0], [1.0, np.nan])["same_non_finite"] is None
    assert compared([np.nan, 1.0], [np.nan, 2.0])["same_non_finite"] is None
    assert compared([np.inf, 1.0], [np.inf, 1.0])["same_non_finite"] is True
    assert compared([np.nan, 1.0], [np.nan, 1.0, 0.0])["same_non_finite"] is None
    assert compared([1.0, 2.0], [1.0, 2.0], non_finite=True)["status"] == "non_finite"
    assert compared([1.0, 2.0], [1.0]) == {
        "status": "mismatch",
        "max_abs_diff": None,
        "max_rel_diff": None,
        "same_non_finite": None,
        "note": "class counts differ: 2 vs 1",
    }
    assert compared([0.5, 0.25], [0.5, 0.25]) == {
        "status": "identical",
        "max_abs_diff": 0.0,
        "max_rel_diff": 0.0,
        "same_non_finite": None,
        "note": None,
    }
    # One side non-finite without its scores: both found them non-finite, the same prediction.
    flagged = {"key": "k", "top_k": [], "non_finite": True}
    both = run_diff.compare_records("k", flagged, flagged | {"position": 1}, ATOL, RTOL)
    assert (both["status"], both["same_non_finite"], both["basis"]) == ("non_finite", True, "top_k")
    nan_scores = _scored([np.nan, 1.0])
    mixed = run_diff.compare_records("k", flagged, nan_scores, ATOL, RTOL)
    assert (mixed["status"], mixed["same_non_finite"]) == ("non_finite", True)
    mixed = run_diff.compare_records("k", nan_scores, flagged, ATOL, RTOL)
    assert (mixed["status"], mixed["same_non_finite"]) == ("non_finite", True)
    # Empty top-k on a side without scores, not flagged: the job found them non-finite.
    empty = run_diff.compare_records("k", {"key": "k", "top_k": []}, _top_k((1, 0.5)), 0, 0)
    assert (empty["status"], empty["top1_baseline"], empty["top1_label_baseline"]) == (
        "non_finite",
        None,
        None,
    )
    assert "same_non_finite" not in empty
    # No top-k but full scores: the top-1 is the arg max, named by its index.
    argmax = run_diff.compare_records("k", _scored([0.1, 0.7, 0.2]), _scored([0.1, 0.2, 0.7]), 0, 0)
    assert (argmax["top1_baseline"], argmax["top1_label_baseline"], argmax["top1_candidate"]) == (
        1,
        "1",
        2,
    )
    assert argmax["top1_match"] is False and argmax["status"] == "mismatch"


def _element(key, status, diff, b=0, c=0, shape=(8, 8), position=0, **extra):
    return {
        "key": key,
        "status": status,
        "basis": "scores",
        "max_abs_diff": diff,
        "top1_baseline": b,
        "top1_candidate": c,
        "top1_label_baseline": f"L{b}",
        "top1_label_candidate": f"L{c}",
        "baseline_batch_size": shape[0],
        "candidate_batch_size": shape[1],
        "candidate_position": position,
    } | extra


def test_the_accumulator_exactly():
    acc = run_diff.empty_accumulator()
    elements = [
        _element("a", "identical", 0.0),
        _element("b", "mismatch", 0.5, b=0, c=1, shape=(8, 32), position=2, duplicates=2),
        _element("c", "non_finite", None, b=None, c=None, position=1, same_non_finite=True),
        _element("d", "non_finite", None, b=2, c=None, shape=(8, 32), position=1),
        {"key": "z", "status": "ambiguous"},
        {"key": "y", "status": "ambiguous", "duplicates": 1},
        {"key": "x", "status": "only_baseline"},
    ]
    for element in elements:
        run_diff.add_element(acc, element)
    hist = LogHistogram.empty()
    hist[0], hist[LogHistogram.bin_of(0.5)], hist[-1] = 1, 1, 1
    worst = acc.pop("worst")
    assert acc == {
        "counts": {
            "identical": 1,
            "within_tolerance": 0,
            "mismatch": 1,
            "non_finite": 2,
            "only_baseline": 1,
            "only_candidate": 0,
            "ambiguous": 2,
        },
        "basis": {"scores": 4, "top_k": 0},
        "flips": {(0, 1): 1},
        "labels": {0: "L0", 1: "L1", 2: "L2"},
        "top1_baseline": {0: 2, 2: 1},
        "top1_candidate": {0: 1, 1: 1},
        "max_abs_diff": float("inf"),
        "hist": hist,
        "by_batch_shape": {(8, 8): [2, 0], (8, 32): [2, 2]},
        "by_position": {0: [1, 0], 2: [1, 1], 1: [2, 1]},
        "duplicate_keys": 3,
        "non_finite_same": 1,
        "ambiguous_keys": ["y", "z"],
    }
    assert sorted((rank, r["key"]) for rank, r in worst) == [
        ((0, 0.0, "a"), "a"),
        ((1, 0.5, "b"), "b"),
        ((1, float("inf"), "c"), "c"),
        ((1, float("inf"), "d"), "d"),
    ]


def test_the_accumulator_keeps_the_worst_twenty():
    acc = run_diff.empty_accumulator()
    for i in range(25):
        run_diff.add_element(acc, _element(f"k{i:02}", "within_tolerance", i * 1e-6))
    run_diff.add_element(acc, _element("bad", "mismatch", 1e-9))
    kept = sorted(acc["worst"], key=lambda e: e[0], reverse=True)
    assert [r["key"] for _, r in kept] == ["bad", *(f"k{i:02}" for i in range(24, 5, -1))]
    assert len(kept) == run_diff.WORST_KEPT == 20
    labels = run_diff.empty_accumulator()
    run_diff.add_element(
        labels, _element("a", "identical", 0.0, b=1, c=1) | {"top1_label_baseline": "one"}
    )
    run_diff.add_element(labels, _element("b", "identical", 0.0, b=1, c=1))
    assert labels["labels"] == {1: "one"}  # the first label seen stays


def test_ambiguous_keys_kept_are_the_first_twenty_sorted():
    acc = run_diff.empty_accumulator()
    for i in range(25, 0, -1):
        run_diff.add_element(acc, {"key": f"k{i:02}", "status": "ambiguous"})
    assert acc["ambiguous_keys"] == [f"k{i:02}" for i in range(1, 21)]
    assert run_diff.AMBIGUOUS_KEPT == 20


# --- what changed between two run.json records -------------------------------------------------


def test_run_changes_exactly():
    base = {
        "model_digest": "d1",
        "preprocessing": {
            "normalization": "symmetric",
            "image_size": [16, 16],
            "crop": {"frac": 0.875},
        },
        "package_versions": {"tensorflow": "2.20.0", "numpy": "2.0"},
        "options": {"batch_size": 8, "pad_batches": False, "deterministic": False},
        "threads": {"tf_intra_op_threads": 2},  # an older record: threads and runner on top
        "runner": "DirectRunner",
        "environment": {
            "cpu_model": "A",
            "cpu_flags": ["avx2", "fma"],
            "gpu": {"name": "T4", "memory": 16},
        },
    }
    cand = {
        "model_digest": "d2",
        "preprocessing": {
            "normalization": "symmetric",
            "image_size": [16, 16],
            "crop": {"frac": 0.9},
        },
        "package_versions": {"tensorflow": "2.21.0", "numpy": "2.0", "keras": "3.1"},
        "options": {"batch_size": 8, "pad_batches": True, "deterministic": True},
        "environment": {
            "cpu_model": "A",
            "cpu_flags": None,
            "gpu": {"name": "L4", "memory": 16},
            "threads": {"tf_intra_op_threads": 4},
            "runner": "PrismRunner",
        },
    }
    assert run_changes.run_changes(base, cand) == [
        {
            "what": "environment.cpu_flags",
            "kind": "hardware",
            "baseline": ["avx2", "fma"],
            "candidate": [],
        },
        {"what": "environment.gpu.name", "kind": "hardware", "baseline": "T4", "candidate": "L4"},
        {
            "what": "environment.runner",
            "kind": "runner",
            "baseline": "DirectRunner",
            "candidate": "PrismRunner",
        },
        {
            "what": "environment.threads.tf_intra_op_threads",
            "kind": "hardware",
            "baseline": 2,
            "candidate": 4,
        },
        {"what": "model_digest", "kind": "model", "baseline": "d1", "candidate": "d2"},
        {
            "what": "options.deterministic",
            "kind": "determinism",
            "baseline": False,
            "candidate": True,
        },
        {
            "what": "options.pad_batches",
            "kind": "batch_shape",
            "baseline": False,
            "candidate": True,
        },
        {"what": "package_versions.keras", "kind": "engine", "baseline": None, "candidate": "3.1"},
        {
            "what": "package_versions.tensorflow",
            "kind": "engine",
            "baseline": "2.20.0",
            "candidate": "2.21.0",
        },
        {
            "what": "preprocessing.crop.frac",
            "kind": "preprocessing",
            "baseline": 0.875,
            "candidate": 0.9,
        },
    ]
    gone = run_changes.run_changes(cand, base)
    assert {c["what"]: c["candidate"] for c in gone}["package_versions.keras"] is None
    assert {c["what"]: (c["baseline"], c["candidate"]) for c in gone}["environment.cpu_flags"] == (
        [],
        ["avx2", "fma"],
    )
    assert run_changes.run_changes(None, cand) == [] and run_changes.run_changes(base, None) == []
    assert run_changes.run_changes({}, {}) == []
    # Nothing recorded on either side: every fact is None alike, no change.
    assert run_changes.run_changes({"options": None}, {"environment": None}) == []
