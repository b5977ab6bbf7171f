"""Bundles keep their weights once, in variables/, read by all three signatures; bundles from
before (weights frozen into constants) still load and score."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import read_json, score_images
from helpers import IMAGE_SIZE, NUM_CLASSES, image_bytes
from legacy_bundle import write_frozen_bundle

from pipeline import export
from transforms.core.model_reading import load_image_model
from transforms.core.preprocess import PreprocessSpec, preprocess_batch
from transforms.score.serving_reference import image_example

# Each test exports, loads and scores real bundles (seconds each).
pytestmark = pytest.mark.slow

SPEC = PreprocessSpec(IMAGE_SIZE)


def _pixels(count: int) -> np.ndarray:
    return np.random.default_rng(3).random((count, *IMAGE_SIZE, 3), dtype=np.float32)


def test_a_bundle_scores_as_its_keras_model_in_both_loaders(tmp_path, model_path):
    tf.config.experimental.enable_op_determinism()
    bundle = str(tmp_path / "bundle")
    assert export.main(["--model", model_path(), "--output", bundle]) == 0
    assert os.path.getsize(f"{bundle}/variables/variables.data-00000-of-00001") > 0
    batch = _pixels(5)
    keras_scores = load_image_model(model_path()).score(batch)
    bundle_scores = load_image_model(bundle).score(batch)
    assert bundle_scores.tobytes() == keras_scores.tobytes()
    # tfx-bsl's loader: the TF1 session loader restores the variables and scores the same.
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.load(session, ["serve"], bundle)
        signature = meta.signature_def["score_tensor"]
        fetched = session.run(
            signature.outputs["scores"].name, {signature.inputs["images"].name: batch}
        )
    assert fetched.tobytes() == keras_scores.tobytes()


def test_the_three_signatures_read_one_set_of_weights(tmp_path, model_path):
    net = keras.saving.load_model(model_path(), compile=False)
    bundle = export.export_bundle(net, str(tmp_path / "bundle"), SPEC)
    loaded = tf.saved_model.load(bundle)
    assert len(loaded.model_variables) == len(net.variables)
    # Zero every weight once: all three signatures then score every image uniformly.
    for variable in loaded.model_variables:
        variable.assign(tf.zeros_like(variable))
    encoded = [image_bytes(i) for i in range(3)]
    pixels = preprocess_batch(tf.constant(encoded), SPEC)
    by_signature = [
        loaded.signatures["score_tensor"](images=pixels),
        loaded.signatures["serve_image_bytes"](image_bytes=tf.constant(encoded)),
        loaded.signatures["serving_default"](
            examples=tf.constant([image_example(b) for b in encoded])
        ),
    ]
    uniform = np.full((3, NUM_CLASSES), 1 / NUM_CLASSES, dtype=np.float32)
    for outputs in by_signature:
        np.testing.assert_array_equal(outputs["scores"].numpy(), uniform)


def test_a_frozen_bundle_from_before_still_loads_and_scores(tmp_path, model_path):
    net = keras.saving.load_model(model_path(), compile=False)
    frozen = write_frozen_bundle(net, str(tmp_path / "frozen"), SPEC)
    current = export.export_bundle(net, str(tmp_path / "current"), SPEC)
    model = load_image_model(frozen)
    assert model.kind == "bundle" and model.bundle_spec == SPEC
    assert tf.train.list_variables(f"{frozen}/variables/variables") == [
        ("_CHECKPOINTABLE_OBJECT_GRAPH", [])
    ]  # every weight is a graph constant
    # TensorFlow folds a frozen graph's constants (a BatchNorm's scale into its inputs), so the
    # two formats may round differently in the last place; the variables format is the model's own.
    np.testing.assert_allclose(
        model.score(_pixels(4)), load_image_model(current).score(_pixels(4)), rtol=0, atol=1e-6
    )
    output = score_images(
        tmp_path, frozen, "--serving_model", frozen, "--reconcile_fraction", "1", images=6
    )
    summary = read_json(f"{output}/reconciliation/summary.json")
    assert summary["verdict"] == "pass", summary["diagnosis"]
    assert summary["by_reference"]["serving"]["compared"] == 6
