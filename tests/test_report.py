"""Tests for transforms.report.reconciliation_page: summaries built by the real reconcile,
compare and diagnosis code."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import helpers
import numpy as np
import pytest

from transforms.core import diagnosis, reconciliation_summary, tolerance
from transforms.core.comparisons import ElementComparison, SweepTiming
from transforms.core.preprocess import PreprocessSpec
from transforms.core.thumbnails import thumbnail
from transforms.report.html_kit import percent_cell
from transforms.report.reconciliation_page import render_report
from transforms.score.reconcile import SummarizeReconciliation

ATOL, RTOL = 1e-5, 1e-4
JOB_BATCH = 32
CLASSES = 10
DATA_URI = re.compile(r'data:image/png;base64,([A-Za-z0-9+/=]+)"')
CHROMIUM = "/usr/bin/chromium"


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


_WEIGHTS = np.random.default_rng(1).standard_normal((8 * 8 * 3, CLASSES)).astype(np.float32)


def linear_model(batch: np.ndarray) -> np.ndarray:
    """A deterministic, batch-independent model."""
    return _softmax(batch.reshape(len(batch), -1) @ _WEIGHTS)


def batch_norm_model(batch: np.ndarray) -> np.ndarray:
    """A model normalising over the batch axis, as BatchNorm left in training mode does."""
    centred = batch - batch.mean(axis=0, keepdims=True)
    return _softmax(centred.reshape(len(batch), -1) @ _WEIGHTS)


def _element(
    rng, uri, batch_size, position, noise, reference="single", flip=False, sweep=False, **extra
):
    """A comparison as the rescoring step emits it, for a given |diff| scale."""
    ref = _softmax(rng.standard_normal(CLASSES) * 3)
    batch = ref.copy()
    if noise:
        batch = (ref + noise * rng.standard_normal(CLASSES)).astype(np.float32)
    if flip:  # the batched top-1 changes: a real disagreement
        top = int(np.argmax(ref))
        batch[top], batch[(top + 1) % CLASSES] = ref[(top + 1) % CLASSES], ref[top]
    comparison = tolerance.compare_scores(batch, ref, ATOL, RTOL)
    return ElementComparison.of(
        uri, batch_size, position, reference, comparison, sweep=sweep, batch_scores=batch, **extra
    )


def _summarize(records, matched=20_000, warnings=()) -> dict:
    combine = SummarizeReconciliation(ATOL, RTOL)
    # Two accumulators merged, as a runner does across bundles.
    halves = [combine.create_accumulator(), combine.create_accumulator()]
    for i, record in enumerate(records):
        combine.add_input(halves[i % 2], record)
    settings = reconciliation_summary.SummarySettings(
        ATOL, RTOL, 0.01, JOB_BATCH, 300, tuple(warnings)
    )
    acc = combine.extract_output(combine.merge_accumulators(halves))
    return reconciliation_summary.summarize(acc, settings, matched, matched)


def _probe(model, rng):
    x = rng.standard_normal((8, 8, 3)).astype(np.float32)
    return diagnosis.run_probes(model, x, JOB_BATCH, ATOL, RTOL)


def pass_summary() -> dict:
    """12 sampled elements, 8 bitwise identical and 4 within tolerance, clean sweep 8/32/64."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        uri = f"gs://bucket/images/cat_{i:03d}.jpg"
        records.append(_element(rng, uri, JOB_BATCH, i, 0.0 if i < 8 else 10 ** -(7 + i % 3)))
        for size in (8, 32, 64):
            records.append(
                _element(rng, uri, size, i % size, 0.0 if size == 8 else 1e-8, sweep=True)
            )
    records += [_probe(linear_model, rng) for _ in range(2)]
    records += [
        SweepTiming(8, 12, 0.06),
        SweepTiming(32, 12, 0.02),
        SweepTiming(64, 12, 0.025),
    ]
    return _summarize(records)


def fail_summary() -> dict:
    """Batch-dependent model, serving reference, mismatches, a hostile uri, a non-finite score."""
    rng = np.random.default_rng(2)
    records = []
    for i in range(40):
        uri = f"gs://bucket/images/dog_{i:03d}.jpg"
        noise = 10 ** -(3 + i % 4)
        records.append(_element(rng, uri, JOB_BATCH, i % JOB_BATCH, noise, flip=i % 9 == 0))
        records.append(
            _element(
                rng,
                uri,
                JOB_BATCH,
                i % JOB_BATCH,
                1e-3,
                reference="serving",
                input_max_abs_diff=0.25,
                batch_preprocessing=PreprocessSpec((8, 8), resize_method="bilinear").to_json(),
                serving_preprocessing=PreprocessSpec((8, 8), resize_method="bicubic").to_json(),
            )
        )
    records.append(_element(rng, "gs://b/<script>alert('x')</script>.jpg", JOB_BATCH, 3, 0.3))
    records.append(
        ElementComparison.of(
            "gs://bucket/images/broken.jpg",
            JOB_BATCH,
            7,
            "single",
            tolerance.compare_scores(np.full(CLASSES, np.nan), np.ones(CLASSES), ATOL, RTOL),
            thumbnail=thumbnail(helpers.image_bytes(3, size=(300, 200))),
        )
    )
    for size in (8, 16, 32):
        for i in range(16):
            records.append(
                _element(
                    rng, f"gs://s/{i}.jpg", size, i % size, 1e-2 if size > 8 else 0.0, sweep=True
                )
            )
    records += [_probe(batch_norm_model, rng) for _ in range(3)]
    records += [
        SweepTiming(8, 16, 0.08),
        SweepTiming(16, 16, 0.05),
        SweepTiming(32, 16, 0.03),
    ]
    warning = {"kind": "active_noise_layer", "where": "layer dropout (Dropout)", "message": "m"}
    return _summarize(records, warnings=[warning])


def empty_summary() -> dict:
    return _summarize([])


def _without_data_uris(page: str) -> str:
    return DATA_URI.sub('"', page)


def _assert_self_contained(page: str) -> None:
    text = _without_data_uris(page)
    assert "http" not in text.lower()
    assert "<script" not in text.lower()
    assert "href=" not in text.lower() and "url(" not in text.lower()
    assert "@import" not in text
    for src in re.findall(r'src="([^"]*)"', page):
        assert src.startswith("data:image/png;base64,")


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in DATA_URI.findall(page)]


def test_pass_report_verdict_counts_and_plots():
    summary = pass_summary()
    # The job's 12 comparisons; the 36 sweep comparisons are reported per swept size.
    assert summary["verdict"] == "pass" and summary["compared"] == 12
    assert sum(row["compared"] for row in summary["sweep"].values()) == 36
    page = render_report(summary)

    assert page.startswith("<!DOCTYPE html>")
    assert '<div class="banner pass"><div class="verdict">PASS</div>' in page
    # The guarantee in words, next to the verdict: 0 of 12 failed bounds the job at 22.1%.
    assert summary["guarantee"] == (
        "PASS: 12 of 12 sampled agree; with 95% confidence at most 22.1% of the 20,000 "
        "predictions differ beyond tolerance."
    )
    assert "12 of 12 sampled agree; with 95% confidence at most 22.1%" in page
    assert "<h2>Counts by reference</h2>" in page and "<td>100.0%</td>" in page
    assert "Model warnings" not in page
    assert "Float noise from the batch shape" in page  # the real diagnosis, labelled
    # Histogram and throughput plot, both real PNGs embedded in the page.
    pngs = _pngs(page)
    assert len(pngs) == 2
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000 for png in pngs)
    # 32 is the fastest clean swept size (12 images in 0.02 s).
    assert "Recommended batch size: 32, the fastest swept size with zero mismatches" in page
    assert "600.0 images/s" in page
    _assert_self_contained(page)


def test_fail_report_diagnosis_references_and_worst():
    summary = fail_summary()
    assert summary["verdict"] == "fail"
    page = render_report(summary)

    assert '<div class="banner fail"><div class="verdict">FAIL</div>' in page
    # The banner's counts are the worst reference's, named (the NaN is the single reference's).
    assert summary["worst_reference"] == "serving" and summary["non_finite"] == 1
    assert "serving reference: 0 bitwise identical · 0 within tolerance" in page
    assert f"{summary['by_reference']['serving']['mismatch']:,} mismatch · 0 non-finite" in page
    causes = [d["cause"] for d in summary["diagnosis"]]
    assert causes[0] == diagnosis.NON_FINITE and diagnosis.BATCH_DEPENDENT in causes
    assert "Batch-dependent layers" in page and "Non-finite scores" in page
    # Single and serving are kept apart, each with its own row and histogram series.
    assert '<td class="l">serving (raw bytes)' in page and '<td class="l">single (alone)' in page
    assert set(summary["abs_diff_histogram"]["by_series"]) == {
        "serving · batch 32",
        "single · batch 32",
        "sweep · batch 8",
        "sweep · batch 16",
        "sweep · batch 32",
    }
    # Model warnings sit right after the verdict banner.
    assert page.index("<h2>Model warnings</h2>") < page.index("<h2>Diagnosis</h2>")
    assert "layer dropout (Dropout)" in page
    # Worst elements: the NaN element ranks first, with its thumbnail.
    assert "<h2>Worst elements</h2>" in page
    assert summary["worst"][0]["uri"] == "gs://bucket/images/broken.jpg"
    assert summary["worst"][0]["status"] == "non_finite"
    assert "non-finite" in page
    assert "No swept batch size is free of mismatches" not in page
    assert "Recommended batch size: 8" in page  # the only clean swept size
    pngs = _pngs(page)
    assert len(pngs) == 3  # histogram, sweep plot, one thumbnail (96 px at most)
    assert min(len(p) for p in pngs) < 40_000
    assert "none failed, so none ran" not in page
    _assert_self_contained(page)


def test_user_strings_are_escaped():
    page = render_report(fail_summary(), run_info={"model": "<b>m</b> & co", "scored": 3})
    assert "<script>alert" not in page
    # Escaped, and breakable only after a slash (never inside a name).
    assert (
        "gs:/<wbr>/<wbr>b/<wbr>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/<wbr>script&gt;.jpg" in page
    )
    assert "&lt;b&gt;m&lt;/b&gt; &amp; co" in page
    _assert_self_contained(page)


def test_empty_summary_is_no_data_without_plots():
    summary = empty_summary()
    assert summary["compared"] == 0
    page = render_report(summary)
    assert summary["verdict"] == "inconclusive"
    assert '<div class="banner inconclusive"><div class="verdict">INCONCLUSIVE</div>' in page
    assert "Nothing was compared, so nothing is proven about the 20,000 predictions" in page
    assert "nothing was compared (empty sample)" in page  # diagnosis evidence
    assert "<img" not in page
    assert "<td>non-finite</td>" not in page  # None here means "no data", not non-finite
    _assert_self_contained(page)
    assert "INCONCLUSIVE" in render_report({})


def test_json_round_trip_and_run_info_header():
    summary = json.loads(json.dumps(fail_summary()))
    run_info = {
        "matched": 1200,
        "scored": 1198,
        "errors": 2,
        "images_per_second": 85.25,
        "model": "gs://models/resnet/bundle",
        "model_digest": "sha256:0123456789abcdef0123456789abcdef",
        "date": "2026-11-25 12:00:00 UTC",
        "options": {"batch_size": 32, "pad_batches": True},
        "package_versions": {"tensorflow": "2.21.0"},
        "labels": [f"class_{i}" for i in range(CLASSES)],
    }
    page = render_report(summary, run_info)
    assert "<b>gs://models/resnet/bundle</b>" in page
    assert "matched 1,200 · scored 1,198 · errors 2" in page and "85.2 images/s" in page
    assert "sha256:0123456789abcdef0123456789abcdef" in page
    assert "2026-11-25 12:00:00 UTC" in page and "tensorflow 2.21.0" in page
    assert "pad_batches <code>True</code>" in page
    # Top-1 as labels where the model has them.
    top1 = summary["worst"][1]["top1_batch"]
    assert f"class_{top1} <code>{top1}</code>" in page
    assert "FAIL" in page


def test_sweep_without_a_clean_size_says_so():
    summary = fail_summary()
    for entry in summary["sweep"].values():
        entry["mismatch"] = max(entry["mismatch"], 1)
    page = render_report(summary)
    assert "No swept batch size is free of mismatches" in page


def test_all_identical_histogram_still_renders():
    rng = np.random.default_rng(5)
    summary = _summarize([_element(rng, f"gs://b/{i}.jpg", JOB_BATCH, i, 0.0) for i in range(5)])
    page = render_report(summary)
    assert "PASS" in page and "5 of 5 sampled agree" in page
    assert "bitwise identical; there is nothing to single out" in page
    assert len(_pngs(page)) == 1  # histogram only, no sweep


def test_small_final_batch_is_explained():
    rng = np.random.default_rng(6)
    records = [_element(rng, f"gs://b/{i}.jpg", 32 if i < 6 else 4, i, 1e-8) for i in range(10)]
    page = render_report(_summarize(records))
    assert "Batches of 4 are smaller than the job's batch size 32" in page
    assert "<code>--pad_batches</code> pads them" in page
    padded = render_report(_summarize(records), {"options": {"pad_batches": True}})
    assert "They were padded to the full size" in padded


def test_failed_comparisons_never_read_as_none_ran():
    """Non-finite failures run no batch probes; the page must not say nothing failed."""
    records = [
        ElementComparison.of(
            f"gs://b/{i}.jpg",
            JOB_BATCH,
            i,
            "single",
            tolerance.compare_scores(
                np.full(CLASSES, np.nan), np.full(CLASSES, np.nan), ATOL, RTOL
            ),
        )
        for i in range(3)
    ]
    rng = np.random.default_rng(7)
    records.append(
        diagnosis.run_probes(
            linear_model, rng.random((8, 8, 3)), 32, ATOL, RTOL, batch_probes=False
        )
    )
    page = render_report(_summarize(records))
    assert "none failed, so none ran" not in page and "no comparison failed" not in page
    assert "3 comparisons failed" in page


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
@pytest.mark.parametrize("verdict", ["pass", "fail", "inconclusive"])
def test_headless_chromium_screenshot(tmp_path, verdict):
    summaries = {"pass": pass_summary, "fail": fail_summary, "inconclusive": empty_summary}
    summary = summaries[verdict]()
    assert summary["verdict"] == verdict
    page_path = tmp_path / "report.html"
    page_path.write_text(render_report(summary), encoding="utf-8")
    png = tmp_path / "report.png"
    profile = tmp_path / "profile"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        f"file://{page_path}",
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    assert png.exists()
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000  # a rendered page, not a blank window


def test_banner_and_rates_are_the_worst_references_and_name_it():
    """Skew: every single comparison agrees, every serving one mismatches (20 images, all
    compared): the banner gives the serving reference's counts, not the pooled half."""
    rng = np.random.default_rng(5)
    records = []
    for i in range(20):
        uri = f"gs://bucket/images/cat_{i:03d}.jpg"
        records.append(_element(rng, uri, JOB_BATCH, i, 0.0))
        records.append(_element(rng, uri, JOB_BATCH, i, 0.0, reference="serving", flip=True))
    summary = _summarize(records, matched=20)
    assert summary["worst_reference"] == "serving" and summary["exhaustive"]
    page = render_report(summary)
    assert "serving reference: 0 bitwise identical · 0 within tolerance" in page
    assert "· 20 mismatch · 0 non-finite · top-1 agreement 0%" in page
    assert (
        "Over all the job's predictions (exact rates), per reference: serving: beyond "
        "tolerance 100.0%, top-1 changed 100.0%; single: beyond tolerance 0%, top-1 changed 0%."
    ) in page
    assert "exactly 100.0% of them differ beyond tolerance from the serving reference" in page


def test_worst_list_groups_by_image_and_series_sort_numerically():
    """A skew: each image's serving comparison mismatches (with its thumbnail) and its single
    one differs a little; sweeps at 1, 8, 32, 64 share one identical curve."""
    rng = np.random.default_rng(7)
    thumb = thumbnail(helpers.image_bytes(4, size=(40, 30)))
    records = []
    for i in range(3):
        uri = f"gs://bucket/a_rather_long_folder_name/image_number_{i:03d}.jpg"
        records.append(_element(rng, uri, JOB_BATCH, i, 1e-6))
        records.append(
            _element(rng, uri, JOB_BATCH, i, 0.0, reference="serving", flip=True, thumbnail=thumb)
        )
    for size in (1, 8, 32, 64):
        records += [_element(rng, f"gs://s/{i}.jpg", size, i, 1e-6, sweep=True) for i in range(2)]
    records += [SweepTiming(size, 2, 0.01) for size in (1, 8, 32, 64)]
    summary = _summarize(records, matched=3)
    series = list(summary["abs_diff_histogram"]["by_series"])
    assert series[-4:] == [f"sweep · batch {s}" for s in (1, 8, 32, 64)]
    page = render_report(summary)
    worst = page[page.index("<h2>Worst elements</h2>") :]
    # One block per image: its uri once (spanning its two rows), the thumbnail on it.
    assert worst.count("image_number_000.jpg") == 1
    assert worst.count('rowspan="2"') == 6 and worst.count('alt="thumbnail"') == 3
    assert "a_rather_long_folder_name/<wbr>image_number_000.jpg" in worst
    assert "identical: one is drawn over the other" in page
    # No comparison was bitwise identical: one plot panel, not an empty "identical" one.
    assert 'alt="non-zero differences"' in page
    assert 'alt="identical counts and non-zero differences"' in render_report(pass_summary())


def test_percentages_round_bounds_up_and_never_read_a_shortfall_as_100():
    assert percent_cell(0.001234, bound=True) == "0.2%"  # nearest would claim a tighter 0.1%
    assert percent_cell(0.0612, bound=True) == "6.2%" and percent_cell(0.0612) == "6.1%"
    assert percent_cell(0.0001234, bound=True) == "0.013%" and percent_cell(0.0, bound=True) == "0%"
    assert (
        percent_cell(0.9996) == ">99.9%"
        and percent_cell(1.0) == "100.0%"
        and percent_cell(0.95) == "95.0%"
    )
    assert percent_cell(None) == "—" and percent_cell(float("nan"), bound=True) == "—"
    summary = fail_summary()
    summary["by_reference"]["single"]["mismatch_rate_upper"] = 0.0612
    assert "single: beyond tolerance 6.2%" in render_report(summary)


@pytest.mark.slow
def test_the_job_writes_the_summary_and_the_launcher_draws_the_same_page(tmp_path):
    """The job's writer leaves summary.json (no thumbnails) and no report: a run stopped
    there has no complete-looking page. The launcher's page from those files is the page of
    the summary the job held, thumbnails included, and the thumbnails file is gone after."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline

    from transforms.core.common import THUMBNAILS_JSON
    from transforms.report.publish import write_report
    from transforms.score.reconcile import ReconcileResult
    from transforms.score.write import WriteReconciliation

    summary = fail_summary()
    with TestPipeline() as p:
        reconciled = ReconcileResult(
            p | "NoElements" >> beam.Create([]), p | "Summary" >> beam.Create([summary])
        )
        _ = reconciled | WriteReconciliation(str(tmp_path))
    directory = tmp_path / "reconciliation"
    assert sorted(os.listdir(directory)) == [THUMBNAILS_JSON, "elements", "summary.json"]
    assert "data:image" not in (directory / "summary.json").read_text()

    run_info = {"model": "m.keras", "date": "2026-11-25 12:00:00 UTC", "labels": None}
    counts = {"matched": 1200, "errors": 2, "scored": 1198, "run_id": "r"}
    path = write_report(str(directory), run_info, counts)
    assert sorted(os.listdir(directory)) == ["elements", "report.html", "summary.json"]
    page = (directory / "report.html").read_text(encoding="utf-8")
    assert page == render_report(summary, run_info | {"matched": 1200, "errors": 2})
    assert path == str(directory / "report.html") and 'alt="thumbnail"' in page
    assert "matched 1,200 · scored" in page and "errors 2" in page


@pytest.mark.slow
def test_no_module_a_worker_runs_imports_the_report():
    """Workers import the jobs' stages (and the launcher modules' pickled sessions); drawing
    is the launcher's, after the job, so none of them may pull in transforms.report."""
    import pkgutil

    import transforms

    stages = [
        f"transforms.{wing}.{m.name}"
        for wing in ("core", "io", "score", "compare")
        for m in pkgutil.iter_modules([os.path.join(transforms.__path__[0], wing)])
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {['pipeline.run', 'pipeline.compare', *stages]!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('transforms.report')))\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
