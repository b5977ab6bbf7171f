"""Odd models and hostile resources: a clear line or a record, never a raw traceback.

Each case runs the real command line in-process (``pipeline.run.main``) on tiny generated
SavedModels (``helpers.save_signature_model``) and a few generated images.
"""

from __future__ import annotations

import helpers
import pytest
from conftest import read_json, read_jsonl

from pipeline.run import main


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile_images")
    helpers.write_images(directory, 12)
    return f"{directory}/*.png"


def _run(images, model, output, *flags):
    return main(["--input", images, "--model", model, "--output", str(output), *flags])


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("batch-score: error: ")
    return lines[0]


@pytest.mark.slow
def test_a_model_that_refuses_the_start_up_probe_is_a_model_warning(
    images, signature_model, tmp_path, capsys
):
    output = tmp_path / "out"
    status = _run(images, signature_model("refuses_zeros"), output, "--reconcile_fraction", "1")

    err = capsys.readouterr().err
    assert status == 0
    assert "warning:" in err and "InvalidArgumentError" in err and "Traceback" not in err
    summary = read_json(output / "reconciliation" / "summary.json")
    assert [w["kind"] for w in summary["model_warnings"]] == ["model_call_failed"]
    assert read_json(output / "run.json")["scored"] == 12


@pytest.mark.slow
def test_an_image_the_model_fails_on_alone_is_a_reference_error_not_the_jobs_end(
    images, signature_model, tmp_path, capsys
):
    # Batches of 4 score; every rescoring alone (and any batch of one) raises.
    output = tmp_path / "out"
    flags = ("--batch_size", "4", "--reconcile_fraction", "1")
    status = _run(images, signature_model("refuses_batch_of_one"), output, *flags)

    assert status == 0
    run = read_json(output / "run.json")
    assert run["status"] == "complete" and run["accounted"]
    predictions = read_jsonl(output / "predictions")
    assert len(predictions) == run["scored"] > 0
    elements = read_jsonl(output / "reconciliation" / "elements")
    job = [e for e in elements if not e.get("sweep")]
    assert len(job) == run["scored"]
    assert {e["status"] for e in job} == {"reference_error"}
    assert all("InvalidArgumentError" in e["error"] for e in job)
    summary = read_json(output / "reconciliation" / "summary.json")
    assert summary["reference_error"] == summary["compared"] == run["scored"]
    assert summary["verdict"] == "fail"
    assert "whose reference failed" in summary["guarantee"]
    assert [c["cause"] for c in summary["diagnosis"]] == ["reference_failed"]


@pytest.mark.slow
def test_a_swept_batch_the_model_fails_on_is_that_sweeps_reference_error(
    images, signature_model, tmp_path
):
    # Padded, the reference is a padded batch of 4 (which scores); the sweep at 1 raises.
    output = tmp_path / "out"
    flags = ("--batch_size", "4", "--pad_batches", "--reconcile_fraction", "1")
    status = _run(
        images, signature_model("refuses_batch_of_one"), output, *flags, "--sweep_batch_sizes", "1"
    )

    assert status == 0
    elements = read_jsonl(output / "reconciliation" / "elements")
    job = [e["status"] for e in elements if not e.get("sweep")]
    swept = [e["status"] for e in elements if e.get("sweep")]
    assert len(job) == len(swept) == 12
    assert "reference_error" not in job
    assert set(swept) == {"reference_error"}
    summary = read_json(output / "reconciliation" / "summary.json")
    assert summary["sweep"]["1"]["reference_error"] == 12
    assert summary["reference_error"] == 0


@pytest.mark.parametrize(
    "kind, words",
    [
        ("rank1", ["output 'scores' has shape [None]", "[N, classes]"]),
        ("rank3", ["output 'scores' has shape [None, 2, 5]", "[N, classes]"]),
        ("two_outputs", ["2 outputs (logits, probs)", "--output_key NAME"]),
    ],
)
def test_a_signature_that_cannot_give_scores_is_refused_at_start(
    images, signature_model, tmp_path, capsys, kind, words
):
    output = tmp_path / "out"
    status = _run(images, signature_model(kind), output)

    line = _one_error_line(capsys)
    assert status == 2
    for word in words:
        assert word in line
    assert not output.exists()


def test_output_key_names_an_output_the_signature_has(images, signature_model, tmp_path, capsys):
    status = _run(images, signature_model("two_outputs"), tmp_path / "out", "--output_key", "x")

    assert status == 2
    assert "--output_key 'x' is not an output of" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_output_key_chooses_the_scored_output_and_run_json_names_it(
    images, signature_model, tmp_path, capsys
):
    output = tmp_path / "out"
    flags = ("--output_key", "probs", "--write_scores", "--reconcile_fraction", "0")
    status = _run(images, signature_model("two_outputs"), output, *flags)

    assert status == 0
    assert "note: scoring output 'probs'" in capsys.readouterr().err
    run = read_json(output / "run.json")
    assert run["model_output"] == "probs" and run["options"]["output_key"] == "probs"
    scores = [p["scores"] for p in read_jsonl(output / "predictions")]
    assert len(scores) == 12
    assert all(abs(sum(row) - 1.0) < 1e-5 for row in scores)  # probabilities, not logits


def test_output_key_is_refused_for_a_keras_model(images, model_path, tmp_path, capsys):
    status = _run(images, model_path(), tmp_path / "out", "--output_key", "scores")

    assert status == 2
    assert "a .keras model has one output" in _one_error_line(capsys)


@pytest.mark.slow
def test_a_batch_whose_scores_lose_the_batch_axis_is_a_model_error_for_its_elements(
    images, signature_model, tmp_path, capsys
):
    # tf.squeeze: [N, C] for N > 1, [C] for a batch of one; the signature's rank is unknown.
    output = tmp_path / "out"
    status = _run(images, signature_model("squeeze"), output, "--batch_size", "1")

    assert status == 4  # the run finished and scored nothing
    run = read_json(output / "run.json")
    assert (run["scored"], run["errors"], run["errors_by_reason"]) == (0, 12, {"model_error": 12})
    errors = read_jsonl(output / "errors")
    assert all("shape [4] for a batch of 1" in e["message"] for e in errors)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_squeezing_model_scores_its_full_batches(images, signature_model, tmp_path):
    output = tmp_path / "out"
    status = _run(images, signature_model("squeeze"), output, "--batch_size", "12")

    assert status == 0
    run = read_json(output / "run.json")
    assert run["scored"] + run["errors_by_reason"].get("model_error", 0) == 12
    assert len(read_jsonl(output / "predictions")) == run["scored"] > 0


@pytest.mark.slow
def test_a_serving_model_with_another_class_count_is_refused_at_start(
    images, model_path, tmp_path, capsys
):
    import keras

    from pipeline.export import export_bundle
    from transforms.core.preprocess import PreprocessSpec

    inputs = keras.Input((*helpers.IMAGE_SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    three = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    bundle = str(tmp_path / "three_classes")
    export_bundle(three, bundle, PreprocessSpec(helpers.IMAGE_SIZE))
    output = tmp_path / "out"

    status = _run(images, model_path(), output, "--serving_model", bundle)

    assert status == 2
    line = _one_error_line(capsys)
    assert "--serving_model" in line and "scores 3 classes and --model 4" in line
    assert not output.exists()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--batch_size", "1000000000000"], ["--batch_size 1,000,000,000,000", "GiB"]),
        (["--sweep_batch_sizes", "1,2000000"], ["--sweep_batch_sizes 2,000,000", "5.7 GiB"]),
    ],
)
def test_a_batch_over_the_memory_bound_is_refused_at_start(
    images, model_path, tmp_path, capsys, flags, words
):
    output = tmp_path / "out"
    status = _run(images, model_path(), output, *flags)

    assert status == 2
    line = _one_error_line(capsys)
    for word in [*words, "of float32 pixels, over the 4 GiB"]:
        assert word in line
    assert not output.exists()
