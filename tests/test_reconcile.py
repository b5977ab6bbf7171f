"""Reconciliation: comparison maths, the mergeable summary, diagnosis, and real fault models."""

import os
import re

import numpy as np
import pytest
from conftest import read_json, read_jsonl, score_images
from helpers import write_images

from pipeline.run import main
from transforms.core import diagnosis, probe_choice, reconciliation_summary, records, tolerance
from transforms.core.comparisons import ElementComparison, ProbeDiff, ProbeResult
from transforms.core.thumbnails import thumbnail
from transforms.core.tolerance import LogHistogram
from transforms.score.reconcile import SummarizeReconciliation
from transforms.score.sweep import BUCKET_TENSORS, bucket_count, bucket_of


def test_compare_statuses():
    ref = np.array([0.1, 0.7, 0.2], np.float32)
    assert tolerance.compare_scores(ref.copy(), ref, 1e-5, 1e-4)["status"] == "identical"
    noisy = ref + np.float32(3e-7)
    close = tolerance.compare_scores(noisy, ref, 1e-5, 1e-4)
    assert close["status"] == "within_tolerance" and not close["bitwise_equal"]
    assert 2e-7 < close["max_abs_diff"] < 4e-7
    skewed = tolerance.compare_scores(np.array([0.5, 0.3, 0.2], np.float32), ref, 1e-5, 1e-4)
    assert skewed["status"] == "mismatch" and not skewed["top1_match"]
    assert skewed["top1_batch"] == 0 and skewed["top1_reference"] == 1


def test_non_finite_scores_are_never_identical():
    nan = np.array([np.nan, 1.0], np.float32)
    same = tolerance.compare_scores(nan, nan.copy(), 1e-5, 1e-4)
    assert same["status"] == "non_finite" and not same["top1_match"]
    mixed = tolerance.compare_scores(nan, np.array([0.0, 1.0], np.float32), 1e-5, 1e-4)
    assert mixed["status"] == "non_finite" and mixed["max_abs_diff"] is None
    inf = np.array([np.inf, 0.0], np.float32)
    assert tolerance.compare_scores(np.zeros(2, np.float32), inf, 1e-5, 1e-4)["status"] == (
        "non_finite"
    )


def test_sampling_is_stable_and_close_to_the_fraction():
    keys = [f"gs://bucket/img_{i}.jpg" for i in range(20000)]
    sampled = [k for k in keys if records.is_sampled(k, 0.05)]
    assert len(sampled) == 1026  # the stable hash picks 5.13% of these keys: close to 5%
    assert sampled == [k for k in keys if records.is_sampled(k, 0.05)]
    assert all(records.is_sampled(k, 1.0) for k in keys[:10])
    assert not any(records.is_sampled(k, 0.0) for k in keys)


def test_histogram_quantiles_are_within_a_bin():
    values = np.random.default_rng(0).lognormal(-14, 2, 5000)
    counts = LogHistogram.empty()
    for v in values:
        LogHistogram.add(counts, float(v))
    for q in (0.5, 0.9, 0.99):
        estimate = LogHistogram.quantile(counts, q, float(values.max()))
        true = float(np.quantile(values, q))
        assert true <= estimate * 1.0001 and estimate <= true * 10**0.25 * 1.0001


def _records(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ref = rng.random(5).astype(np.float32)
        batch = ref + rng.choice([0, 1e-7, 1e-3], p=[0.5, 0.4, 0.1]).astype(np.float32)
        cmp = tolerance.compare_scores(batch, ref, 1e-5, 1e-4)
        size = int(rng.choice([8, 32]))
        c = ElementComparison.of(f"u{seed}_{i}", size, i % 8, "single", cmp, batch_scores=batch)
        out.append(c)
    return out


SETTINGS = reconciliation_summary.SummarySettings(1e-5, 1e-4, 0.05, 32)


def test_summary_merges_to_the_same_result_as_one_pass():
    fn = SummarizeReconciliation(1e-5, 1e-4)
    parts = [_records(50, seed) for seed in range(3)]
    one = fn.create_accumulator()
    for record in sum(parts, []):
        one = fn.add_input(one, record)
    accs = []
    for part in parts:
        acc = fn.create_accumulator()
        for record in part:
            acc = fn.add_input(acc, record)
        accs.append(acc)
    single_pass = reconciliation_summary.summarize(fn.extract_output(one), SETTINGS, 3000, 3000)
    merged = reconciliation_summary.summarize(fn.merge_accumulators(accs), SETTINGS, 3000, 3000)
    assert single_pass == merged
    assert merged["compared"] == 150
    assert merged["identical"] + merged["within_tolerance"] + merged["mismatch"] == 150
    assert merged["verdict"] == ("fail" if merged["mismatch"] else "pass")
    assert sum(s["compared"] for s in merged["by_batch_size"].values()) == 150
    assert len(merged["worst"]) == 10
    assert merged["worst"][0]["max_abs_diff"] == merged["max_abs_diff"]


def test_diagnose_orders_causes():
    clean = ProbeDiff(0.0, False, False, True)
    dirty = ProbeDiff(0.1, True, True, False)
    acc = reconciliation_summary.accumulate(
        reconciliation_summary.Accumulator(),
        ProbeResult({"repeat": clean, "neighbours": dirty, "shape": dirty}),
        1e-5,
        1e-4,
    )
    stats = {name: vars(p) for name, p in acc.probes.items()}
    single = {
        "compared": 4,
        "identical": 0,
        "within_tolerance": 0,
        "mismatch": 4,
        "max_abs_diff": 0.1,
        "top1_agreement": 0.5,
    }
    causes = diagnosis.diagnose(stats, {"single": single})
    assert [c["cause"] for c in causes] == ["batch_dependent_layers"]
    assert "1 of 1 probes" in causes[0]["evidence"]


def _reconcile(tmp_path, model, *flags, images=40):
    output = score_images(tmp_path, model, "--reconcile_fraction", "1", *flags, images=images)
    return read_json(os.path.join(output, "reconciliation", "summary.json")), output


@pytest.mark.parametrize(
    "fault, cause",
    [
        ("batchnorm_training", "batch_dependent_layers"),
        ("batch_mean", "batch_dependent_layers"),
        ("dropout_training", "stochastic_layers"),
    ],
)
@pytest.mark.slow
def test_fault_models_fail_with_their_cause(tmp_path, model_path, fault, cause):
    summary, output = _reconcile(tmp_path, model_path(fault), "--batch_size", "8")
    assert summary["verdict"] == "fail"
    assert summary["mismatch"] > 0
    assert [d["cause"] for d in summary["diagnosis"]][0] == cause
    # The batch-sized probes ran where there was a mismatch to explain.
    assert summary["probes"]["neighbours"]["probes"] >= 1
    assert summary["probes"]["repeat"]["probes"] >= 1
    elements = read_jsonl(os.path.join(output, "reconciliation", "elements"))
    assert len(elements) == summary["compared"] == 40
    assert {e["reference"] for e in elements} == {"single"}


@pytest.mark.slow
def test_clean_model_passes_at_every_batch_size_from_1_to_64(tmp_path, model_path):
    sizes = ",".join(str(s) for s in range(1, 65))
    summary, _ = _reconcile(
        tmp_path, model_path(), "--batch_size", "64", "--sweep_batch_sizes", sizes, images=70
    )
    assert summary["verdict"] == "pass", summary["diagnosis"]
    assert summary["mismatch"] == 0
    assert set(summary["sweep"]) == {str(s) for s in range(1, 65)}
    assert all(
        row["mismatch"] == 0 and row["images_per_second"] > 0 for row in summary["sweep"].values()
    )
    assert summary["diagnosis"][0]["cause"] in ("none", "numeric_batch_shape")
    # Nothing to explain: only the repeat probe ran (batch-of-1 calls), no batch-sized probe.
    assert summary["probes"]["repeat"]["probes"] >= 1
    assert summary["probes"]["neighbours"]["probes"] == summary["probes"]["shape"]["probes"] == 0


@pytest.mark.slow
def test_pad_batches_makes_the_reference_bitwise_identical(tmp_path, model_path):
    summary, output = _reconcile(tmp_path, model_path(), "--batch_size", "16", "--pad_batches")
    assert summary["identical"] == summary["compared"] == 40
    assert summary["diagnosis"][0]["cause"] == "none"
    sizes = {p["batch_size"] for p in read_jsonl(os.path.join(output, "predictions"))}
    assert sizes == {16, 8}  # real rows are recorded, not the padded shape


@pytest.mark.slow
def test_fail_on_mismatch_exits_3(tmp_path, model_path):
    write_images(tmp_path / "images", 12)
    argv = [
        "--input",
        f"{tmp_path}/images/*.png",
        "--model",
        model_path("batch_mean"),
        "--output",
        str(tmp_path / "out"),
        "--reconcile_fraction",
        "1",
        "--batch_size",
        "4",
    ]
    assert main(argv + ["--fail_on_mismatch"]) == 3
    assert main(argv + ["--overwrite"]) == 0
    assert os.path.exists(tmp_path / "out" / "reconciliation" / "report.html")


def _job_in_bundles(tmp_path, model, name, *flags, images=40) -> tuple[dict, list, str]:
    """The summary, the sorted element records and the report of one run over the same
    ``images`` (batch 4, every element compared), the runner's bundles cut as ``flags`` say."""
    output = str(tmp_path / name)
    score_images(
        tmp_path, model, "--reconcile_fraction", "1", "--batch_size", "4", "--output", output,
        *flags, images=images,
    )  # fmt: skip
    with open(os.path.join(output, "reconciliation", "report.html")) as f:
        report = f.read()
    elements = read_jsonl(os.path.join(output, "reconciliation", "elements"))
    summary = read_json(os.path.join(output, "reconciliation", "summary.json"))
    return summary, sorted(elements, key=lambda e: e["key"]), report


@pytest.mark.slow
def test_probes_profiles_and_thumbnails_do_not_change_with_bundle_boundaries(tmp_path, model_path):
    # A model whose scores depend on the batch: mismatches to probe, profile and show. Names
    # are read in runs of the batch size, so both runs score the same batches; only the
    # bundles differ: one per stage, or each stage's input dealt round-robin into 5 bundles.
    model = model_path("batchnorm_training")
    one, one_elements, one_report = _job_in_bundles(tmp_path, model, "one")
    many, many_elements, many_report = _job_in_bundles(
        tmp_path, model, "many", "--direct_num_workers", "5", "--direct_running_mode",
        "multi_threading",
    )  # fmt: skip
    assert one["mismatch"] > 1 and one["verdict"] == "fail"
    assert many_elements == one_elements
    # Each probe ran once, on the same element: the repeat probe on the first compared
    # element in key order, all three and the layer profile on the first mismatch.
    assert many["probes"] == one["probes"]
    assert [one["probes"][name]["probes"] for name in ("repeat", "neighbours", "shape")] in (
        [1, 1, 1],
        [2, 1, 1],
    )
    assert many["divergence"] == one["divergence"]
    (profile,) = one["divergence"]
    mismatches = [e["key"] for e in one_elements if e["status"] == "mismatch"]
    assert profile["key"] == min(mismatches, key=probe_choice.probe_order)
    assert many == one
    # The report shows a thumbnail for each of the worst elements, the same ones.
    worst = {w["key"] for w in one["worst"] if w["status"] != "identical"}
    assert worst
    for key in worst:
        with open(key, "rb") as f:
            made = thumbnail(f.read())
        assert made and made in one_report and made in many_report, key
    thumbnails = re.findall(r'src="(data:image/png;base64,[^"]+)"', one_report)
    assert sorted(re.findall(r'src="(data:image/png;base64,[^"]+)"', many_report)) == sorted(
        thumbnails
    )


def test_sweep_batches_do_not_change_with_bundle_boundaries(tmp_path, model_path):
    # Batch statistics make each sweep row depend on its batch: equal diffs, equal batches.
    # 42 images: at 8 the last of the key-sorted sample's batches holds 2 elements.
    model = model_path("batchnorm_training")
    sweep = ("--sweep_batch_sizes", "1,3,8")
    one, one_elements, _ = _job_in_bundles(tmp_path, model, "one", *sweep, images=42)
    many, many_elements, _ = _job_in_bundles(
        tmp_path, model, "many", *sweep, "--direct_num_workers", "5", "--direct_running_mode",
        "multi_threading", images=42,
    )  # fmt: skip
    swept = [e for e in one_elements if e.get("sweep")]
    assert len(swept) == 3 * 42
    assert [e for e in many_elements if e.get("sweep")] == swept
    assert _timeless(many["sweep"]) == _timeless(one["sweep"])
    assert many["by_batch_size"] == one["by_batch_size"]
    # The short batch is recorded at its real size: the last two keys, positions 0 and 1.
    keys = sorted(e["key"] for e in one_elements if not e.get("sweep"))
    short = sorted((e["position"], e["key"]) for e in swept if e["batch_size"] == 2)
    assert short == [(0, keys[-2]), (1, keys[-1])]
    assert one["sweep"]["2"]["compared"] == 2 and one["sweep"]["2"]["images"] == 0
    assert {size: one["sweep"][size]["images"] for size in ("1", "3", "8")} == dict.fromkeys(
        ("1", "3", "8"), 42
    )
    by_size = {size: sum(e["batch_size"] == int(size) for e in swept) for size in one["sweep"]}
    assert by_size == {size: one["sweep"][size]["compared"] for size in one["sweep"]}
    assert one["sweep"]["8"]["mismatch"] > 0  # batch statistics: the sweep saw them


def _timeless(sweep: dict) -> dict:
    """Sweep entries without the model time, which no two runs share."""
    timed = ("seconds", "images_per_second")
    return {size: {k: v for k, v in e.items() if k not in timed} for size, e in sweep.items()}


def test_sweep_buckets_hold_a_few_of_the_largest_batches():
    assert bucket_count(None, 64) == bucket_count(0, 64) == bucket_count(BUCKET_TENSORS, 64) == 1
    assert bucket_count(10 * BUCKET_TENSORS, 8) == 10
    assert bucket_count(10 * BUCKET_TENSORS, 1024) == 2  # two batches of a large size each
    keys = [f"gs://b/{i}.jpg" for i in range(4000)]
    counts = np.bincount([bucket_of(k, 8) for k in keys], minlength=8)
    assert len(counts) == 8 and counts.min() > 400  # uniform: about 500 each
    assert [bucket_of(k, 8) for k in keys[:50]] == [bucket_of(k, 8) for k in keys[:50]]
