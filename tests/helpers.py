"""Small generated images, tiny Keras models with known faults, and a runner that reports no
metrics, for real-pipeline tests."""

from __future__ import annotations

import io
import os

import numpy as np
from apache_beam.metrics.metric import MetricResults
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.runner import PipelineResult
from PIL import Image

IMAGE_SIZE = (16, 16)
NUM_CLASSES = 4


def image_bytes(
    seed: int, size=(24, 20), fmt: str = "PNG", mode: str = "RGB", **save_args
) -> bytes:
    """A deterministic, textured image (gradients plus noise), encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), np.full((h, w), seed * 37 % 256)], -1
    )
    pixels = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def write_images(directory, count: int, start: int = 0, fmt: str = "PNG") -> list[str]:
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = os.path.join(directory, f"img_{i:04d}.{fmt.lower()}")
        with open(path, "wb") as f:
            f.write(image_bytes(i, fmt=fmt))
        paths.append(path)
    return paths


def build_model(fault: str = "clean", seed: int = 0):
    """A tiny conv classifier (Keras) with the layers a fault needs.

    clean: BatchNorm and Dropout, both meant to run in inference mode.
    batchnorm_training / dropout_training: only that layer; ``save_model`` bakes training
      mode into the exported signature (Keras 3 lets an outer ``training=False`` override a
      layer's own ``training=True``, so the fault has to live in the exported graph, as it
      does when someone exports a model traced in training mode).
    batch_mean: subtracts the mean over the batch axis (normalisation across the batch).
    """
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    if fault != "dropout_training":
        # Named: Keras numbers unnamed layers by how many this process made before.
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if fault != "batchnorm_training":
        x = keras.layers.Dropout(0.3, name="dropout")(x)
    if fault == "batch_mean":
        x = x - keras.ops.mean(x, axis=0, keepdims=True)
    outputs = keras.layers.Softmax()(keras.layers.Dense(NUM_CLASSES)(x))
    return keras.Model(inputs, outputs, name=f"tiny_{fault}")


def save_model(directory, fault: str = "clean", seed: int = 0) -> str:
    """Saves the model: a .keras file, or a TF2 SavedModel traced in training mode."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    net = build_model(fault, seed)
    if fault not in ("batchnorm_training", "dropout_training"):
        path = os.path.join(directory, f"tiny_{fault}.keras")
        net.save(path)
        return path
    path = os.path.join(directory, f"tiny_{fault}_savedmodel")
    module = tf.Module()
    module.net = net
    # Dropout's random-seed state is a variable the SavedModel must carry too.
    module.seed_states = [
        generator.state for layer in net.layers for generator in layer._seed_generators
    ]
    signature = tf.function(
        lambda images: {"scores": net(images, training=True)},
        input_signature=[tf.TensorSpec([None, *IMAGE_SIZE, 3], tf.float32)],
    )
    tf.saved_model.save(module, path, signatures={"serving_default": signature})
    return path


def save_verdict_model(directory, kind: str) -> str:
    """Tiny .keras models whose verdict must not be a plain PASS, or needs a warning.

    nan: scores are NaN for every image. constant: the same scores for every image (a zero
    Dense kernel). uint8: takes uint8 pixels and normalises them itself. dropout_wired: a
    Dropout layer called with training=True in the functional graph (masked by our call).
    """
    import keras

    keras.utils.set_random_seed(0)
    dtype = "uint8" if kind == "uint8" else "float32"
    inputs = keras.Input((*IMAGE_SIZE, 3), dtype=dtype)
    x = keras.layers.Rescaling(1 / 255.0)(inputs) if kind == "uint8" else inputs
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if kind == "dropout_wired":
        x = keras.layers.Dropout(0.5, name="wired_dropout")(x, training=True)
    zeros = kind == "constant"
    x = keras.layers.Dense(NUM_CLASSES, kernel_initializer="zeros" if zeros else "glorot_uniform")(
        x
    )
    if kind == "nan":
        x = keras.ops.log(-keras.ops.abs(x) - 1.0)  # log of a negative number: NaN
    outputs = keras.layers.Softmax()(x)
    net = keras.Model(inputs, outputs, name=f"tiny_{kind}")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"tiny_{kind}.keras")
    net.save(path)
    return path


def save_signature_model(directory, kind: str) -> str:
    """Tiny TF2 SavedModels whose ``serving_default`` is odd in one way (for refusals).

    refuses_zeros: raises on an all-zero batch. refuses_batch_of_one: raises on a batch of one
    row (an image fails only when scored alone). rank1: scores [N]. rank3: scores [N, 2, 5].
    squeeze: ``tf.squeeze`` of [N, C], of unknown rank in the signature and [C] at batch 1.
    two_outputs: ``logits`` and ``probs``. classes_3: a 3-class classifier.
    """
    import tensorflow as tf

    classes = 3 if kind == "classes_3" else NUM_CLASSES
    module = tf.Module()
    module.kernel = tf.Variable(tf.random.stateless_normal((3, classes), seed=(0, 1)) * 4.0)

    def probs(images):
        logits = tf.reduce_mean(images, axis=[1, 2]) @ module.kernel
        return logits, tf.nn.softmax(logits)

    def serve(images):
        logits, scores = probs(images)
        if kind == "refuses_zeros":
            tf.debugging.assert_greater(tf.reduce_max(tf.abs(images)), 0.0, "all-zero batch")
        elif kind == "refuses_batch_of_one":
            tf.debugging.assert_greater(tf.shape(images)[0], 1, "a batch of one")
        elif kind == "rank1":
            return {"scores": tf.reduce_max(scores, axis=1)}
        elif kind == "rank3":
            return {"scores": tf.reshape(tf.concat([scores, scores, scores[:, :2]], 1), [-1, 2, 5])}
        elif kind == "squeeze":
            return {"scores": tf.squeeze(scores)}
        elif kind == "two_outputs":
            return {"logits": logits, "probs": scores}
        return {"scores": scores}

    signature = tf.function(serve, input_signature=[tf.TensorSpec([None, *IMAGE_SIZE, 3])])
    path = os.path.join(directory, f"signature_{kind}")
    tf.saved_model.save(module, path, signatures={"serving_default": signature})
    return path


class _NoMetrics(MetricResults):
    def query(self, filter=None):
        kinds = (
            MetricResults.COUNTERS,
            MetricResults.DISTRIBUTIONS,
            MetricResults.GAUGES,
            MetricResults.STRINGSETS,
            MetricResults.BOUNDED_TRIES,
        )
        return {kind: [] for kind in kinds}


class _NoMetricsResult(PipelineResult):
    def wait_until_finish(self, duration=None):
        return self.state

    def metrics(self):
        return _NoMetrics()


class NoMetricsDirectRunner(FnApiRunner):
    """Runs the job in process, as the DirectRunner does, but reports no metrics at all: as
    far as run.json is concerned, a runner like Flink (apache/beam#18287). Pass it as
    ``--runner helpers.NoMetricsDirectRunner``."""

    def run_pipeline(self, pipeline, options):
        return _NoMetricsResult(super().run_pipeline(pipeline, options).state)


def save_cancelling_model(directory) -> str:
    """A .keras model whose head adds two large branches that nearly cancel (``branch_b`` is
    ``-branch_a`` scaled by 1 - 1e-5): ulp noise from the batch shape in the branches' fused
    kernels becomes a large relative difference at ``cancel``, with no suspicious op anywhere.
    """
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((*IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    a = keras.layers.Dense(64, name="branch_a")(x)
    b = keras.layers.Dense(64, name="branch_b")(x)
    x = keras.layers.Add(name="cancel")([a, b])
    head = keras.layers.Dense(NUM_CLASSES, name="head")
    outputs = keras.layers.Softmax()(head(x))
    net = keras.Model(inputs, outputs, name="tiny_cancel")
    kernel, bias = net.get_layer("branch_a").get_weights()
    net.get_layer("branch_a").set_weights([kernel * 1000, bias])
    net.get_layer("branch_b").set_weights([-kernel * 1000 * (1 - 1e-5), -bias])
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 1000, bias])
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tiny_cancel.keras")
    net.save(path)
    return path
