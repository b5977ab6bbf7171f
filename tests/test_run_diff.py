"""The pure maths of comparing two runs, and the prediction parsers: no pipeline."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from transforms.core import prediction_formats, run_changes, run_diff, run_diff_summary
from transforms.core.bounds import clopper_pearson_upper
from transforms.core.records import Scored, prediction_record


def _record(key, scores, batch_size=8, position=0, k=3, write_scores=True):
    labels = ["cat", "dog", "eel", "fox", "gnu", "hen"]
    scored = Scored(key, np.asarray(scores, np.float32), batch_size, "b0", position)
    return prediction_record(scored, k, labels, "sha256:x", write_scores)


def test_identical_within_tolerance_mismatch_and_flip_on_full_scores():
    base = _record("a", [0.1, 0.6, 0.2, 0.1])
    same = run_diff.compare_records("a", base, _record("a", [0.1, 0.6, 0.2, 0.1]), 1e-5, 1e-4)
    assert same["status"] == "identical" and same["basis"] == "scores"
    assert same["max_abs_diff"] == 0.0
    close = run_diff.compare_records("a", base, _record("a", [0.1, 0.6 + 3e-7, 0.2, 0.1]), 1e-5, 0)
    assert close["status"] == "within_tolerance"
    assert close["max_abs_diff"] == pytest.approx(
        float(np.float32(0.6 + 3e-7)) - float(np.float32(0.6))
    )
    flip = run_diff.compare_records("a", base, _record("a", [0.1, 0.2, 0.6, 0.1]), 1e-5, 1e-4)
    assert flip["status"] == "mismatch" and not flip["top1_match"]
    assert (flip["top1_label_baseline"], flip["top1_label_candidate"]) == ("dog", "eel")


def test_top_k_basis_when_a_side_has_no_scores_and_non_finite_is_never_identical():
    base = _record("a", [0.1, 0.6, 0.2, 0.1], write_scores=False)
    cand = _record("a", [0.1, 0.6, 0.2, 0.1])
    record = run_diff.compare_records("a", base, cand, 1e-5, 1e-4)
    assert record["basis"] == "top_k" and record["status"] == "identical"
    shorter = _record("a", [0.1, 0.6, 0.2, 0.1], k=2, write_scores=False)
    assert run_diff.compare_records("a", base, shorter, 0, 0)["status"] == "identical"
    forced = run_diff.compare_records("a", cand, cand, 1e-5, 1e-4, top_k_only=True)
    assert forced["basis"] == "top_k"
    nan = _record("a", [np.nan, 0.6, 0.2, 0.1])
    assert run_diff.compare_records("a", nan, nan, 1e-5, 1e-4)["status"] == "non_finite"


def test_coverage_statuses_and_class_count_difference():
    only = run_diff.compare_records("a", _record("a", [1, 0, 0, 0]), None, 1e-5, 1e-4)
    assert only["status"] == "only_baseline" and only["top1_label_baseline"] == "cat"
    assert run_diff.compare_records("a", None, _record("a", [1, 0, 0, 0]), 0, 0)["status"] == (
        "only_candidate"
    )
    short = _record("a", [1, 0, 0, 0]) | {"scores": [1.0, 0.0]}
    record = run_diff.compare_records("a", _record("a", [1, 0, 0, 0]), short, 0, 0)
    assert record["status"] == "mismatch" and "class counts" in record["note"]


def _summary(pairs, changes=(), fraction=1.0):
    accs = []
    for chunk in (pairs[::2], pairs[1::2]):  # two accumulators, merged: the CombineFn's path
        acc = run_diff.empty_accumulator()
        for key, b, c in chunk:
            run_diff.add_element(acc, run_diff.compare_records(key, b, c, 1e-5, 1e-4))
        accs.append(acc)
    merged = run_diff.merge_accumulators(accs)
    return run_diff_summary.summarize(merged, 1e-5, 1e-4, fraction, list(changes))


def test_summary_counts_flips_drift_and_cause():
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(40):
        scores = rng.random(4).astype(np.float32)
        flipped = scores[[1, 0, 2, 3]] if i < 10 else scores  # 10 keys swap classes 0 and 1
        pairs.append((f"k{i}", _record(f"k{i}", scores), _record(f"k{i}", flipped, position=i)))
    pairs.append(("gone", _record("gone", [1, 0, 0, 0]), None))
    change = {"what": "model_digest", "kind": "model", "baseline": "a", "candidate": "b"}
    summary = _summary(pairs, [change])
    flips = sum(1 for _, b, c in pairs[:10] if b["top_k"][0]["index"] in (0, 1))
    assert summary["compared"] == 40 and summary["only_baseline"] == 1
    assert summary["coverage"]["baseline"] == 41 and summary["coverage"]["candidate"] == 40
    assert summary["identical"] == 30 and summary["top1_flips"] == flips == 6
    assert {(f["from_label"], f["to_label"]): f["count"] for f in summary["flips"]} == {
        ("cat", "dog"): 3,
        ("dog", "cat"): 3,
    }
    assert summary["cause"] == "model_change" and summary["verdict"] == "changed"
    assert summary["drift"]["threshold"] == run_diff_summary.PSI_THRESHOLD
    assert summary["mismatch_rate_upper"] is None  # every key compared: no sample bound
    assert len(summary["worst"]) == 10 and summary["worst"][0]["status"] == "mismatch"


def test_cause_from_changes():
    numeric = [
        {"what": "options.batch_size", "kind": "batch_shape", "baseline": 8, "candidate": 32}
    ]
    prep = [{"what": "preprocessing.normalization", "kind": "preprocessing"}]
    assert run_changes.likely_cause(numeric, differ=5) == "numeric"
    assert run_changes.likely_cause(prep + numeric, differ=5) == "preprocessing_change"
    assert run_changes.likely_cause([], differ=5) == "nondeterminism"
    assert run_changes.likely_cause([], differ=0) == "none"
    assert run_changes.likely_cause([], differ=0, runs_known=False) == "unknown"


def test_run_changes_lists_what_differs_and_cpu_flags_by_side():
    base = {
        "model_digest": "d1",
        "preprocessing": {"normalization": "symmetric", "image_size": [16, 16]},
        "package_versions": {"tensorflow": "2.20.0", "numpy": "2.0"},
        "options": {"batch_size": 8, "pad_batches": False, "deterministic": False},
        "environment": {"cpu_model": "A", "cpu_flags": ["avx2", "fma"], "gpus": [], "runner": "D"},
    }
    cand = {
        **base,
        "package_versions": {"tensorflow": "2.21.0", "numpy": "2.0"},
        "options": {"batch_size": 32, "pad_batches": False, "deterministic": False},
        "environment": {"cpu_model": "B", "cpu_flags": ["avx2", "avx512f", "fma"], "gpus": []},
    }
    changes = {c["what"]: c for c in run_changes.run_changes(base, cand)}
    assert set(changes) == {
        "package_versions.tensorflow",
        "options.batch_size",
        "environment.cpu_model",
        "environment.cpu_flags",
        "environment.runner",
    }
    assert changes["environment.cpu_flags"]["baseline"] == []
    assert changes["environment.cpu_flags"]["candidate"] == ["avx512f"]
    assert run_changes.likely_cause(list(changes.values()), differ=3) == "numeric"
    assert run_changes.run_changes(base, base) == []


def test_exact_upper_bound_and_drift_measures():
    assert clopper_pearson_upper(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300))
    assert clopper_pearson_upper(3, 100) == pytest.approx(stats.beta.ppf(0.95, 4, 97))
    assert clopper_pearson_upper(5, 5) == 1.0 and clopper_pearson_upper(0, 0) == 1.0
    same = run_diff_summary.drift({0: 50, 1: 50}, {0: 5, 1: 5})
    assert same["psi"] == pytest.approx(0) and same["js_divergence"] == pytest.approx(0)
    apart = run_diff_summary.drift({0: 10}, {1: 10})
    assert apart["js_divergence"] == pytest.approx(1.0) and apart["psi"] > 1


def test_sampled_summary_gives_upper_bounds_and_no_overlap_is_inconclusive():
    pairs = [
        (f"k{i}", _record(f"k{i}", [1, 0, 0, 0]), _record(f"k{i}", [1, 0, 0, 0])) for i in range(20)
    ]
    sampled = _summary(pairs, fraction=0.5)
    assert sampled["mismatch_rate_upper"] == pytest.approx(clopper_pearson_upper(0, 20))
    assert sampled["top1_flip_rate_upper"] == pytest.approx(clopper_pearson_upper(0, 20))
    empty = _summary([("a", _record("a", [1, 0, 0, 0]), None)])
    assert empty["verdict"] == "inconclusive" and "no keys in common" in empty["verdict_reason"]
    # A sample of nothing bounds nothing: no bound, not the 1.0 of "nothing was tried".
    empty_sample = _summary([("a", _record("a", [1, 0, 0, 0]), None)], fraction=0.5)
    assert empty_sample["mismatch_rate_upper"] is None
    assert empty_sample["top1_flip_rate_upper"] is None


def test_parsers_round_trip_every_output_format():
    record = _record("gs://b/x.png", [0.1, 0.6, 0.2, 0.1], batch_size=32, position=7)
    log = prediction_formats.from_prediction_log(prediction_formats.to_prediction_log(record), 3)
    assert log["scores"] == record["scores"]
    assert [e["index"] for e in log["top_k"]] == [e["index"] for e in record["top_k"]]
    for name in ("key", "uri", "batch_size", "batch_id", "position", "model_digest"):
        assert log[name] == record[name]
    table = pa.Table.from_pylist(
        [prediction_formats.to_parquet_row(record)], schema=prediction_formats.PARQUET_SCHEMA
    )
    assert prediction_formats.from_parquet_row(table.to_pylist()[0]) == record
    plain = _record("y", [0.1, 0.6, 0.2, 0.1], write_scores=False)
    row = pa.Table.from_pylist(
        [prediction_formats.to_parquet_row(plain)], schema=prediction_formats.PARQUET_SCHEMA
    ).to_pylist()[0]
    assert prediction_formats.from_parquet_row(row) == plain
    nan = _record("z", [np.nan, 0.6, 0.2, 0.1])
    parsed = prediction_formats.from_prediction_log(prediction_formats.to_prediction_log(nan))
    assert parsed["non_finite"] and parsed["scores"][0] is None and parsed["top_k"] == []


def test_the_vector_rule_is_the_reconciliation_rule():
    from transforms.core.tolerance import compare_scores

    rng = np.random.default_rng(1)
    for scale in (0.0, 1e-8, 1e-6, 1e-5, 1e-3, 1e-1):
        for _ in range(50):
            base = rng.random(6).astype(np.float32)
            cand = (base + rng.normal(scale=scale, size=6)).astype(np.float32)
            mine = run_diff.compare_records(
                "k", _record("k", base.tolist()), _record("k", cand.tolist()), 1e-5, 1e-4
            )
            theirs = compare_scores(cand, base, 1e-5, 1e-4)
            assert mine["status"] == theirs["status"]
            assert mine["max_abs_diff"] == pytest.approx(theirs["max_abs_diff"])


def test_no_keys_in_common_is_its_own_cause_not_none():
    only = [("a", _record("a", [1, 0, 0, 0]), None), ("b", None, _record("b", [0, 1, 0, 0]))]
    summary = _summary(only)
    assert summary["verdict"] == "inconclusive" and summary["cause"] == "no_common_keys"
    assert summary["evidence"] == [
        "no key is in both runs: did they score the same inputs, named the same way "
        "(keys are the input URIs, or the shard records' keys)?"
    ]
