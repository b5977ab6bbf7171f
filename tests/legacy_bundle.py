"""Writes a bundle the way ``pipeline.export`` did before bundles kept variables: the weights
frozen into graph constants, imported into each of the three signatures. Bundles like this are
in use, and must still load and score."""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from transforms.core.common import BUNDLE_SPEC_ASSET, IMAGE_FEATURE, SCORE_TENSOR_SIGNATURE
from transforms.core.preprocess import PreprocessSpec, preprocess_batch, to_model_dtype


class _FrozenBundle(tf.Module):
    def __init__(self, net, spec: PreprocessSpec):
        super().__init__()
        self._dtype = str(net.inputs[0].dtype)
        self._spec = spec
        height, width = spec.image_size
        call = tf.function(lambda images: net(images, training=False))
        frozen = convert_variables_to_constants_v2(
            call.get_concrete_function(tf.TensorSpec([None, height, width, 3], self._dtype))
        )
        self._graph_def = frozen.graph.as_graph_def()
        self._input_name, self._output_name = frozen.inputs[0].name, frozen.outputs[0].name
        pixels = tf.TensorSpec([None, height, width, 3], tf.float32, name="images")
        strings = tf.TensorSpec([None], tf.string)
        self.score_tensor = tf.function(
            lambda images: {"scores": self._scores(images)}, input_signature=[pixels]
        )
        self.serve_image_bytes = tf.function(
            lambda image_bytes: {"scores": self._scores(preprocess_batch(image_bytes, spec))},
            input_signature=[strings],
        )
        self.serving_default = tf.function(self._serving_default, input_signature=[strings])

    def _scores(self, images):
        (scores,) = tf.graph_util.import_graph_def(
            self._graph_def,
            input_map={self._input_name: to_model_dtype(images, self._dtype)},
            return_elements=[self._output_name],
            name="model",
        )
        return scores

    def _serving_default(self, examples):
        features = tf.io.parse_example(
            examples, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)}
        )
        return {"scores": self._scores(preprocess_batch(features[IMAGE_FEATURE], self._spec))}


def write_frozen_bundle(net, output: str, spec: PreprocessSpec) -> str:
    bundle = _FrozenBundle(net, spec)
    signatures = {
        "serving_default": bundle.serving_default.get_concrete_function(),
        "serve_image_bytes": bundle.serve_image_bytes.get_concrete_function(),
        SCORE_TENSOR_SIGNATURE: bundle.score_tensor.get_concrete_function(),
    }
    tf.saved_model.save(bundle, output, signatures=signatures)
    os.makedirs(os.path.join(output, "assets"), exist_ok=True)
    with open(os.path.join(output, BUNDLE_SPEC_ASSET), "w") as f:
        f.write(spec.to_json() + "\n")
    return output
