"""The layer probe: where batch and single part ways, on tiny models with one culprit layer."""

import json
import os

import numpy as np
import pytest
from conftest import read_json, read_jsonl, score_images
from helpers import IMAGE_SIZE, image_bytes, save_cancelling_model

from pipeline import export, predict_one
from transforms.core import diagnosis, layer_probe, probe_choice, reconciliation_summary
from transforms.core.comparisons import LayerDiff, LayerProfile
from transforms.core.model_reading import load_image_model
from transforms.report.reconciliation_page import render_report

ATOL, RTOL = 1e-5, 1e-4
SETTINGS = reconciliation_summary.SummarySettings(ATOL, RTOL, 1.0, 8)


def _element(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (*IMAGE_SIZE, 3)).astype(np.float32)


def _profile(path, position=3, rows=8):
    x = _element()
    graph = layer_probe.layer_graph(load_image_model(path))
    batch = layer_probe.in_its_batch(x, position, rows, None)
    return layer_probe.profile(graph, batch, position, x[None], 0, ATOL, RTOL, "single", "x")


@pytest.mark.parametrize(
    "fault, layer, op",
    [
        # SavedModels traced in training mode: the ops carry the layer in their name scope,
        # which TensorFlow's tracing numbers (layer bn: scope bn_1).
        ("batchnorm_training", "bn_1", "SquaredDifference"),
        ("dropout_training", "dropout_1", "StatelessRandomUniformV2"),
        # A .keras model: the functional graph's operations.
        ("batch_mean", "subtract", "Subtract"),
    ],
)
def test_the_culprit_is_the_first_divergent_layer(model_path, fault, layer, op):
    profile = _profile(model_path(fault))
    first = profile.first_divergent_layer
    assert (first.name, first.op) == (layer, op)
    assert first.tolerance_ratio > 1 and first.inputs_max_abs_diff == 0.0
    assert profile.agreed_before == 0.0  # every layer before it bitwise equal
    names = [entry.name for entry in profile.layers]
    before = profile.layers[: names.index(layer)]
    assert before and all(entry.max_abs_diff == 0.0 for entry in before)
    assert [entry.depth for entry in profile.layers] == sorted(e.depth for e in profile.layers)
    assert profile.layers[-1].tolerance_ratio > 1  # the scores differ, as the job saw


def test_two_branches_that_nearly_cancel_are_found_in_their_fused_kernel(tmp_path):
    profile = _profile(save_cancelling_model(str(tmp_path)))
    first = profile.first_divergent_layer
    assert (first.name, first.op, first.depth) == ("cancel", "Add", 5)
    # Fetching every layer unfuses MatMul + BiasAdd + Add: the layers are compared one by one.
    assert profile.method == layer_probe.LAYER_BY_LAYER
    branches = [e for e in profile.layers if e.name.startswith("branch_")]
    assert len(branches) == 2 and all(e.max_abs_diff == 0.0 for e in branches)


def test_a_clean_model_gives_a_profile_and_no_divergent_layer(model_path):
    profile = _profile(model_path(), position=0, rows=4)
    assert profile.first_divergent_layer is None
    assert [e.name for e in profile.layers][0].startswith("input_layer")
    assert len(profile.layers) == 8 and [e.depth for e in profile.layers] == list(range(8))


@pytest.mark.slow
def test_the_job_names_the_layer_in_summary_and_diagnosis(tmp_path, model_path):
    output = score_images(
        tmp_path,
        model_path("batchnorm_training"),
        "--reconcile_fraction",
        "1",
        "--batch_size",
        "4",
        images=8,
    )
    summary = read_json(os.path.join(output, "reconciliation", "summary.json"))
    (entry,) = summary["divergence"]
    assert entry["reference"] == "single" and entry["failed"]
    # The failing element that comes first in key order, whatever the bundles.
    elements = read_jsonl(os.path.join(output, "reconciliation", "elements"))
    failing = [e["key"] for e in elements if e["status"] == "mismatch"]
    assert entry["key"] == min(failing, key=probe_choice.probe_order)
    first = entry["first_divergent_layer"]
    assert (first["name"], first["op"], first["depth"]) == (
        "bn_1",
        "SquaredDifference",
        2,
    )
    assert [layer["name"] for layer in entry["layers"]][:3] == [
        "input",
        "conv_1",
        "bn_1",
    ]
    evidence = summary["diagnosis"][0]["evidence"]
    assert evidence.endswith(
        "batch and single part ways at `bn_1` (SquaredDifference), depth 2; "
        "every layer before it is bitwise equal"
    )


@pytest.mark.slow
def test_a_clean_job_reports_one_noise_profile(tmp_path, model_path):
    output = score_images(
        tmp_path, model_path(), "--reconcile_fraction", "1", "--batch_size", "4", images=8
    )
    summary = read_json(os.path.join(output, "reconciliation", "summary.json"))
    assert summary["verdict"] == "pass"
    (entry,) = summary["divergence"]
    assert not entry["failed"] and entry["first_divergent_layer"] is None
    assert len(entry["layers"]) == 8


@pytest.mark.slow
def test_a_normalization_skew_against_a_bundle_parts_ways_at_depth_0(tmp_path, model_path):
    bundle = str(tmp_path / "bundle")
    assert export.main(["--model", model_path(), "--output", bundle]) == 0
    output = score_images(
        tmp_path,
        model_path(),
        "--reconcile_fraction",
        "1",
        "--batch_size",
        "4",
        "--serving_model",
        bundle,
        "--normalization",
        "unit",
        images=8,
    )
    summary = read_json(os.path.join(output, "reconciliation", "summary.json"))
    (entry,) = summary["divergence"]  # the single reference agrees: only serving is probed
    assert entry["reference"] == "serving"
    first = entry["first_divergent_layer"]
    assert first["depth"] == 0 and first["inputs_max_abs_diff"] == 0.0
    assert first["max_abs_diff"] > 0.1
    (cause,) = summary["diagnosis"]
    assert cause["cause"] == "preprocessing_mismatch"
    assert "batch and serving part ways at the model input" in cause["evidence"]


def _entry(key, failed=True, first=True):
    layer = LayerDiff("bn_3", "FusedBatchNormV3", 2, 0.3, 2.0, 900.0, 1e-7)
    plain = LayerDiff("conv", "Conv2D", 1, 1e-7, 1e-6, 0.01, 0.0)
    return LayerProfile(
        "single", key, layer if first else None, (plain, layer), 1e-7 if first else None, failed
    )


def test_the_summary_keeps_the_smallest_failing_key_and_drops_clean_profiles_then():
    parts = [[_entry("b"), _entry("a", failed=False)], [_entry("c"), _entry("d", failed=False)]]
    accs = [reconciliation_summary.Accumulator() for _ in parts]
    for acc, items in zip(accs, parts, strict=True):
        for item in items:
            reconciliation_summary.accumulate(acc, item, ATOL, RTOL)
    summary = reconciliation_summary.summarize(
        reconciliation_summary.merge(accs, ATOL, RTOL), SETTINGS
    )
    (entry,) = summary["divergence"]
    assert entry["key"] == "b" and entry["failed"]
    assert entry["first_divergent_layer"] == {
        "name": "bn_3",
        "op": "FusedBatchNormV3",
        "depth": 2,
        "max_abs_diff": 0.3,
        "max_rel_diff": 2.0,
        "tolerance_ratio": 900.0,
        "inputs_max_abs_diff": 1e-7,
    }
    assert [layer["name"] for layer in entry["layers"]] == ["conv", "bn_3"]
    clean = reconciliation_summary.Accumulator()
    for key in ("z", "y"):
        reconciliation_summary.accumulate(clean, _entry(key, failed=False, first=False), ATOL, RTOL)
    (entry,) = reconciliation_summary.summarize(clean, SETTINGS)["divergence"]
    assert entry["key"] == "y" and entry["first_divergent_layer"] is None


def test_the_diagnosis_sentence_names_layer_op_depth_and_the_noise_before():
    assert diagnosis.divergence_sentence(_entry("k")) == (
        "batch and single part ways at `bn_3` (FusedBatchNormV3), depth 2; "
        "every layer before it agrees to 1e-7"
    )


def test_the_report_draws_the_profile(tmp_path):
    summary = {"divergence": [_entry("img<1>.png").to_record()]}
    page = render_report(summary)
    section = page[page.index("Where batch and reference part ways") :]
    assert section.count('<img src="data:image/png;base64,') == 1
    assert (
        "img&lt;1&gt;.png" in section and "<code>bn_3</code> (FusedBatchNormV3), depth 2" in section
    )
    assert "Where batch and reference part ways" not in render_report({"divergence": []})


@pytest.mark.slow
def test_predict_one_layers_rebuilds_the_real_batch(tmp_path, model_path, capsys):
    model = model_path("batchnorm_training")
    output = score_images(
        tmp_path, model, "--reconcile_fraction", "1", "--batch_size", "4", images=8
    )
    image = str(tmp_path / "images" / "img_0005.png")
    (element,) = [
        e
        for e in read_jsonl(os.path.join(output, "reconciliation", "elements"))
        if e["key"] == image
    ]
    capsys.readouterr()
    assert predict_one.main([image, "--model", model, "--against", output, "--layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"({element['batch_size']} rows, position {element['position']})" in lines[1]
    (marked,) = [line for line in lines if line.lstrip().startswith(">>")]
    assert marked.split()[1:3] == ["2", "bn_1"]
    # The image's own batch, rebuilt from the run: the output layer differs exactly as the job's.
    assert float(lines[-2].split()[-2]) == pytest.approx(element["max_abs_diff"], rel=1e-3)
    assert lines[-1].strip().startswith("batch and single part ways at `bn_1`")


def test_predict_one_layers_needs_a_run(tmp_path, model_path, capsys):
    image = str(tmp_path / "x.png")
    with open(image, "wb") as f:
        f.write(image_bytes(0))
    assert predict_one.main([image, "--model", model_path(), "--layers"]) == 2
    assert "add --against" in capsys.readouterr().err


def test_rows_nan_on_both_sides_agree_and_records_stay_json(verdict_model):
    # The nan model is NaN from its log on, for every image: both rows equally broken.
    profile = _profile(verdict_model("nan"))
    assert profile.first_divergent_layer is None
    assert all(entry.max_abs_diff == 0.0 for entry in profile.layers)
    inf = LayerDiff("log", "Log", 3, np.inf, np.inf, np.inf, 0.0)
    record = LayerProfile("single", "k", inf, (inf,), np.inf).to_record()
    assert record["first_divergent_layer"]["max_abs_diff"] is None
    assert record["agreed_before"] is None and record["layers"][0]["tolerance_ratio"] is None
    json.dumps(record, allow_nan=False)
    page = render_report({"divergence": [record]})
    assert "max |diff| non-finite" in page
