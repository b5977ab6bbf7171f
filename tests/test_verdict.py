"""A verdict you can believe: the sample sized for a guarantee, the bound it states, no PASS
without evidence, integer-input models, and warnings from reading the model before running it."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import read_json, read_jsonl
from helpers import IMAGE_SIZE, write_images

from pipeline.run import main
from transforms.core import bounds, reconciliation_summary, records, tolerance
from transforms.core.comparisons import ElementComparison
from transforms.core.model_facts import model_facts
from transforms.core.model_reading import load_image_model
from transforms.core.preprocess import PreprocessSpec, preprocess_image

ATOL, RTOL = 1e-5, 1e-4


def _binomial_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """Reference: the p where P(X <= k | n, p) = 1 - confidence, by bisection on the sum."""

    def cdf(p: float) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))

    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) > 1 - confidence else (low, middle)
    return (low + high) / 2


@pytest.mark.parametrize("k, n", [(0, 1), (0, 20), (0, 300), (1, 300), (5, 100), (12, 1000)])
def test_bound_matches_a_brute_force_binomial_sum(k, n):
    assert bounds.clopper_pearson_upper(k, n) == pytest.approx(_binomial_upper(k, n), abs=1e-9)


def test_bound_edges():
    # Zero failures has a closed form: 1 - 0.05 ** (1 / n), about 3 / n (the rule of three).
    assert bounds.clopper_pearson_upper(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300))
    assert bounds.clopper_pearson_upper(0, 0) == 1.0  # nothing tried proves nothing
    assert bounds.clopper_pearson_upper(7, 7) == 1.0


@pytest.mark.parametrize(
    "fraction, minimum, matched, expected",
    [
        (0.01, 300, 20, 1.0),  # a small job is compared whole
        (0.01, 300, 200, 1.0),
        (0.01, 300, 20_000, 300 / 20_000),
        (0.01, 300, 48_211, 0.01),  # 1% is 482 elements: more than the minimum
        (0.01, 300, 10_000_000, 0.01),  # a large one pays only the fraction
        (0.05, 0, 1_500, 0.05),
        (0.0, 300, 20, 0.0),  # 0 still turns reconciliation off
    ],
)
def test_effective_fraction(fraction, minimum, matched, expected):
    assert records.effective_fraction(fraction, minimum, matched) == pytest.approx(expected)


def test_the_default_samples_about_300_of_20000_by_the_stable_hash():
    keys = [f"gs://bucket/img_{i}.jpg" for i in range(20_000)]
    share = records.effective_fraction(0.01, 300, len(keys))
    sampled = [k for k in keys if records.is_sampled(k, share)]
    assert len(sampled) == 309  # the stable hash; binomial(20000, 0.015) is 300, sd ~17
    assert sampled == [k for k in keys if records.is_sampled(k, share)]


def _comparisons(n: int, scores_of=lambda i: np.array([0.1, 0.2, 0.7 - 1e-3 * i, 1e-3 * i])):
    out = []
    for i in range(n):
        scores = np.asarray(scores_of(i), np.float32)
        comparison = tolerance.compare_scores(scores, scores.copy(), ATOL, RTOL)
        out.append(
            ElementComparison.of(f"u{i}", 32, i % 32, "single", comparison, batch_scores=scores)
        )
    return out


def _summary(items, matched, predictions=None):
    acc = reconciliation_summary.Accumulator()
    for item in items:
        reconciliation_summary.accumulate(acc, item, ATOL, RTOL)
    settings = reconciliation_summary.SummarySettings(ATOL, RTOL, 0.01, 32, 300)
    return reconciliation_summary.summarize(acc, settings, matched, predictions or matched)


def test_the_guarantee_in_words():
    summary = _summary(_comparisons(300), 48_211)
    assert summary["verdict"] == "pass"
    assert summary["confidence"] == 0.95
    assert summary["effective_fraction"] == 0.01
    assert summary["mismatch_rate_upper"] == pytest.approx(_binomial_upper(0, 300), abs=1e-9)
    assert summary["guarantee"] == (
        "PASS: 300 of 300 sampled agree; with 95% confidence at most 1.0% of the 48,211 "
        "predictions differ beyond tolerance."
    )


def test_no_pass_without_evidence():
    empty = _summary([], 10)
    assert empty["verdict"] == "inconclusive" and empty["compared"] == 0
    constant = _summary(_comparisons(5, lambda i: [0.25] * 4), 5)
    assert constant["verdict"] == "inconclusive"
    assert constant["diagnosis"][0]["cause"] == "constant_output"


def test_summary_json_is_strict_json():
    import json

    summary = _summary(_comparisons(3), 3)
    json.dumps(summary, allow_nan=False)  # no NaN or inf may reach summary.json


# --- real pipelines ---------------------------------------------------------------------------


def _run(tmp_path, model, *flags, images=20):
    write_images(tmp_path / "images", images)
    output = str(tmp_path / "out")
    argv = ["--input", f"{tmp_path}/images/*.png", "--model", model, "--output", output]
    status = main([*argv, *flags])
    summary_path = os.path.join(output, "reconciliation", "summary.json")
    summary = read_json(summary_path) if os.path.exists(summary_path) else None
    return status, summary, output


@pytest.mark.slow
def test_a_20_image_job_compares_all_20_by_default(tmp_path, model_path, capsys):
    status, summary, output = _run(tmp_path, model_path())
    assert status == 0
    assert summary["matched"] == summary["predictions"] == 20
    assert summary["effective_fraction"] == 1.0 and summary["exhaustive"]
    assert summary["compared"] == 20 and summary["verdict"] == "pass"
    assert summary["mismatch_rate_upper"] == 0.0  # every prediction checked: exact, not bounded
    assert len(read_jsonl(os.path.join(output, "reconciliation", "elements"))) == 20
    out = capsys.readouterr().out
    assert "reconciliation: PASS: 20 of 20 sampled agree" in out


@pytest.mark.slow
def test_a_nan_model_fails_with_non_finite_scores(tmp_path, verdict_model, capsys):
    status, summary, output = _run(tmp_path, verdict_model("nan"), "--fail_on_mismatch")
    assert status == 3
    assert summary["verdict"] == "fail"
    assert summary["non_finite"] == summary["compared"] == 20 and summary["identical"] == 0
    causes = [d["cause"] for d in summary["diagnosis"]]
    assert causes[0] == "non_finite_scores" and "stochastic_layers" not in causes
    assert summary["probes"]["repeat"]["non_finite"] >= 1
    assert summary["probes"]["repeat"]["beyond_tolerance"] == 0
    elements = read_jsonl(os.path.join(output, "reconciliation", "elements"))
    assert {e["status"] for e in elements} == {"non_finite"}
    out = capsys.readouterr().out
    assert "20 with non-finite scores" in out and "FAIL" in out


@pytest.mark.slow
def test_a_constant_output_model_is_inconclusive(tmp_path, verdict_model, capsys):
    status, summary, _ = _run(tmp_path, verdict_model("constant"), "--fail_on_mismatch")
    assert status == 3  # inconclusive is no evidence: a gate must not pass it
    assert summary["verdict"] == "inconclusive" and summary["identical"] == 20
    assert summary["diagnosis"][0]["cause"] == "constant_output"
    assert "INCONCLUSIVE" in capsys.readouterr().out


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _direct_scores(net, paths, spec):
    pixels = np.stack([preprocess_image(tf.constant(_read(p)), spec).numpy() for p in paths])
    return net(np.round(pixels).astype(np.uint8), training=False).numpy()


@pytest.mark.slow
def test_a_uint8_model_scores_its_pixels(tmp_path, verdict_model):
    import keras

    path = verdict_model("uint8")
    status, summary, output = _run(tmp_path, path, "--write_scores", "--batch_size", "8")
    assert status == 0 and summary["verdict"] == "pass"
    assert [w["kind"] for w in summary["model_warnings"]] == ["integer_input"]
    predictions = {p["uri"]: p["scores"] for p in read_jsonl(os.path.join(output, "predictions"))}
    uris = sorted(predictions)
    got = np.array([predictions[u] for u in uris], np.float32)
    assert len({tuple(np.round(row, 6)) for row in got}) == 20  # distinct, not one vector
    net = keras.saving.load_model(path)
    expected = _direct_scores(net, uris, PreprocessSpec(IMAGE_SIZE, "none"))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_a_uint8_model_refuses_another_normalization(tmp_path, verdict_model, capsys):
    status, _, output = _run(tmp_path, verdict_model("uint8"), "--normalization", "symmetric")
    assert status == 2 and not os.path.exists(output)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes uint8 pixels" in err[0]


def test_a_uint8_bundle_feeds_its_pixels_in_every_signature(tmp_path, verdict_model):
    import keras

    from pipeline.export import export_bundle

    net = keras.saving.load_model(verdict_model("uint8"))
    spec = PreprocessSpec(IMAGE_SIZE, "none")
    bundle = export_bundle(net, str(tmp_path / "bundle"), spec)
    paths = write_images(tmp_path / "images", 4)
    expected = _direct_scores(net, paths, spec)
    loaded = tf.saved_model.load(bundle)
    raw = tf.constant([_read(p) for p in paths])
    served = loaded.signatures["serve_image_bytes"](image_bytes=raw)["scores"].numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_keras_dropout_wired_to_training_passes_with_a_warning(tmp_path, verdict_model):
    status, summary, _ = _run(tmp_path, verdict_model("dropout_wired"))
    # Our training=False masks it: scores are deterministic, so the comparison passes...
    assert status == 0 and summary["verdict"] == "pass"
    # ...and the user still hears that other callers would get random scores.
    (warning,) = summary["model_warnings"]
    assert warning["kind"] == "active_noise_layer"
    assert "wired_dropout" in warning["where"] and "training=True" in warning["message"]


@pytest.mark.parametrize(
    "fault, kind",
    [
        ("dropout_training", "random_op"),
        ("batchnorm_training", "batch_statistics_op"),
        ("batch_mean", "batch_statistics_op"),
    ],
)
def test_a_model_with_random_ops_or_batch_statistics_gets_a_warning(model_path, fault, kind):
    facts = model_facts(load_image_model(model_path(fault)), None, None)
    assert kind in [w["kind"] for w in facts.warnings]
    assert all(w["where"] and w["message"] for w in facts.warnings)


def test_a_clean_model_gets_no_warning(model_path):
    assert model_facts(load_image_model(model_path()), None, None).warnings == ()


def test_counting_matched_does_not_hold_image_bytes(tmp_path):
    """``matched`` is a side input of Preprocess. A runner cannot fuse a step with the stage
    computing its side input; the break must fall on the URIs, so reading, decoding and
    scoring stay one fused stage and no image's bytes wait for the count."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    from pipeline.graph import build_pipeline, job_model_config
    from pipeline.options import parse_args
    from transforms.core.model_facts import ModelFacts

    write_images(tmp_path / "images", 2)
    argv = ["--input", f"{tmp_path}/images/*.png", "--output", str(tmp_path / "out")]
    options, config = parse_args([*argv, "--dry_run=True"])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config, ModelFacts.placeholder(), job_model_config(config))
    _, stages = fn_runner.FnApiRunner().create_stages(pipeline.to_runner_api())
    stage_of = {t.unique_name: s.name for s in stages for t in s.transforms}
    read = stage_of["ReadImages/ReadBytes/ParDo(_ReadBytesDoFn)"]
    assert stage_of["Preprocess/DecodeAndPreprocess/ParDo(_PreprocessDoFn)"] == read
    assert stage_of["Score[bs=32]/RunInference/BeamML_RunInference"] == read


def test_graph_inspection_tells_random_from_fixed_seeds():
    from transforms.core import inspect_model

    def graph(fn):
        traced = tf.function(fn).get_concrete_function(tf.TensorSpec([None, 4], tf.float32))
        return traced.graph.as_graph_def()

    fixed = graph(lambda x: x + tf.random.stateless_uniform(tf.shape(x), seed=[1, 2]))
    assert inspect_model.graph_warnings(fixed) == []
    stateful = graph(lambda x: x + tf.random.uniform(tf.shape(x)))
    assert [w.kind for w in inspect_model.graph_warnings(stateful)] == ["random_op"]


def test_logits_get_a_warning_and_probabilities_do_not():
    from transforms.core import inspect_model

    assert inspect_model.output_warnings(np.array([[0.2, 0.3, 0.5]])) == []
    (warning,) = inspect_model.output_warnings(np.array([[2.0, -1.0, 0.5]]))
    assert warning.kind == "not_probabilities" and "logits" in warning.message
