"""The job end to end on DirectRunner: predictions, provenance, accounting, outputs."""

import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import read_json, read_jsonl

from pipeline.run import run
from transforms.core.records import Preprocessed
from transforms.score.model_sharing import ModelConfig
from transforms.score.scoring import ImageModelHandler


def _run(tmp_path, *flags):
    output = str(tmp_path / "out")
    run(["--output", output, *flags], save_main_session=False)
    return output


def test_scores_every_image_with_provenance_and_accounting(tmp_path, images_dir, model_path):
    output = _run(
        tmp_path,
        "--input",
        f"{images_dir}/*.png",
        "--model",
        model_path(),
        "--batch_size",
        "8",
        "--reconcile_fraction",
        "0",
        "--top_k",
        "3",
        "--write_scores",
    )
    predictions = read_jsonl(os.path.join(output, "predictions"))
    assert sorted(p["uri"] for p in predictions) == sorted(
        str(images_dir / name) for name in os.listdir(images_dir)
    )
    for p in predictions:
        assert p["key"] == p["uri"]
        assert len(p["top_k"]) == 3 and p["top_k"][0]["score"] >= p["top_k"][1]["score"]
        assert len(p["scores"]) == 4 and abs(sum(p["scores"]) - 1) < 1e-5
        assert 0 <= p["position"] < p["batch_size"] <= 8
        assert len(p["model_digest"]) == 16
    # 20 images at batch 8 in one bundle: batches of exactly 8, 8 and 4.
    batches = {}
    for p in predictions:
        batches.setdefault(p["batch_id"], []).append(p)
    assert sorted(len(members) for members in batches.values()) == [4, 8, 8]
    for members in batches.values():
        assert sorted(m["position"] for m in members) == list(range(len(members)))
        assert {m["batch_size"] for m in members} == {len(members)}
    record = read_json(os.path.join(output, "run.json"))
    assert (record["matched"], record["scored"], record["errors"]) == (20, 20, 0)
    assert record["accounted"] is True
    assert record["options"]["batch_size"] == 8
    assert record["package_versions"]["apache-beam"].startswith("2.")
    assert record["images_per_second"] > 0
    assert read_jsonl(os.path.join(output, "errors")) == []


def test_handler_receives_exactly_the_batch_size(model_path, images_dir):
    """RunInference with our handler: every call gets batch_size rows but the bundle's last."""
    import tensorflow as tf

    from transforms.core.preprocess import PreprocessSpec, preprocess_image

    spec = PreprocessSpec((16, 16))
    elements = [
        Preprocessed(str(p), preprocess_image(tf.constant(p.read_bytes()), spec).numpy())
        for p in sorted(images_dir.iterdir())
    ]
    handler = ImageModelHandler(ModelConfig(model_path()), batch_size=6)
    with TestPipeline() as p:
        sizes = (
            p
            | beam.Create(elements, reshuffle=False)
            | RunInference(handler)
            | beam.Map(lambda s: (s.batch_id, s.batch_size))
            | beam.Distinct()
            | beam.Map(lambda pair: pair[1])
        )
        assert_that(sizes, equal_to([6, 6, 6, 2]))


@pytest.mark.slow
def test_batch_size_does_not_change_top1(tmp_path, images_dir, model_path):
    def top1(batch_size):
        output = _run(
            tmp_path / str(batch_size),
            "--input",
            f"{images_dir}/*.png",
            "--model",
            model_path(),
            "--batch_size",
            batch_size,
            "--reconcile_fraction",
            "0",
        )
        return {p["uri"]: p["top_k"][0]["index"] for p in read_jsonl(f"{output}/predictions")}

    assert top1("1") == top1("7")


def test_manifest_and_patterns_are_deduplicated(tmp_path, images_dir, model_path):
    manifest = tmp_path / "manifest.txt"
    paths = sorted(str(p) for p in images_dir.iterdir())
    manifest.write_text("# images\n" + "\n".join(paths[:5] + paths[:2]) + "\n\n")
    output = _run(
        tmp_path,
        "--input_manifest",
        str(manifest),
        "--input",
        paths[0],
        "--model",
        model_path(),
        "--reconcile_fraction",
        "0",
    )
    assert sorted(p["uri"] for p in read_jsonl(f"{output}/predictions")) == paths[:5]
    assert read_json(f"{output}/run.json")["matched"] == 5


@pytest.mark.slow
def test_demo_reaches_90_percent_top1_on_its_sample_images(tmp_path):
    from pipeline import demo, flags

    # The demo that ./run_tests.sh built, else a fresh one here: the test never writes into
    # the checkout.
    data_dir = flags.default_data_dir()
    if not os.path.isdir(demo.bundle_path(data_dir)) or not os.path.isdir(
        demo.sample_dir(data_dir)
    ):
        data_dir = str(tmp_path / "demo")
    bundle = demo.build(data_dir)
    samples = f"{demo.sample_dir(data_dir)}/*/*.png"
    output = _run(tmp_path, "--input", samples, "--model", bundle, "--reconcile_fraction", "0")
    predictions = read_jsonl(f"{output}/predictions")
    labels = {p["uri"]: os.path.basename(os.path.dirname(p["uri"])) for p in predictions}
    correct = [p["top_k"][0]["label"] == labels[p["uri"]] for p in predictions]
    assert len(predictions) == demo.SAMPLE_PER_CLASS * len(demo.LABELS)
    assert np.mean(correct) >= 0.90


@pytest.mark.slow
def test_non_finite_scores_are_flagged_not_ranked(tmp_path, images_dir):
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    # log of a negative mean is NaN: every image whose first channel mean... all of them.
    outputs = keras.layers.Dense(2)(keras.ops.log(x - 10.0))
    path = str(tmp_path / "nan.keras")
    keras.Model(inputs, outputs).save(path)
    output = _run(
        tmp_path,
        "--input",
        f"{images_dir}/*.png",
        "--model",
        path,
        "--reconcile_fraction",
        "1",
        "--write_scores",
    )
    predictions = read_jsonl(f"{output}/predictions")
    assert len(predictions) == 20
    assert all(p["non_finite"] and p["top_k"] == [] for p in predictions)
    assert all(None in p["scores"] for p in predictions)
    record = read_json(f"{output}/run.json")
    assert record["non_finite_scores"] == 20 and record["accounted"]
    summary = read_json(f"{output}/reconciliation/summary.json")
    assert summary["compared"] == 20
