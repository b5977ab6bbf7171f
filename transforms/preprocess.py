"""The one shared image preprocessing: encoded bytes -> float32 [H, W, 3].

Every path that turns bytes into a model input imports this module: the batch pipeline, the
per-element reconciliation, the exported serving signatures and ``predict_one``. Nothing
re-implements it, so a score difference can never come from two copies drifting apart.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow as tf

# Named in common (no TensorFlow) so --help can list them; importable from here as before.
from transforms.common import NORMALIZATIONS, RESIZE_METHODS

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@dataclasses.dataclass(frozen=True)
class PreprocessSpec:
    """Settings of the shared preprocessing; round-trips through JSON.

    Attributes:
      image_size: (height, width) the image is resized to.
      normalization: one of NORMALIZATIONS.
      resize_method: a ``tf.image.resize`` method; fixed so both paths resize alike.
      antialias: low-pass filter when downscaling (keeps thumbnails from aliasing).
    """

    image_size: tuple[int, int]
    normalization: str = "symmetric"
    resize_method: str = "bilinear"
    antialias: bool = True

    def __post_init__(self):
        height, width = (int(v) for v in self.image_size)
        object.__setattr__(self, "image_size", (height, width))
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {self.normalization!r}; choose one of "
                + ", ".join(NORMALIZATIONS)
            )
        if self.resize_method not in RESIZE_METHODS:
            raise ValueError(
                f"unknown resize method {self.resize_method!r}; choose one of "
                + ", ".join(RESIZE_METHODS)
            )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        fields = json.loads(text)
        fields["image_size"] = tuple(fields["image_size"])
        return cls(**fields)


def decode_rgb(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes any image TensorFlow reads into uint8 [h, w, 3].

    The format is sniffed from the content, not the file name. Animations give their first
    frame, grayscale and alpha images become RGB (alpha dropped), 16-bit images become 8-bit.
    """
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def normalize(image: tf.Tensor, normalization: str) -> tf.Tensor:
    """Maps float32 pixels in [0, 255] to the model's input range.

    Written as ``image * scale + offset`` with float32 constants, never a division: graph
    optimisers rewrite ``x / c`` as ``x * (1 / c)``, which rounds differently from the eager
    op, and the same bytes must give the same tensor on every path, bit for bit.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}")
    scale, offset = _AFFINE[normalization]
    if normalization == "caffe":
        image = image[..., ::-1]
    return image * tf.constant(scale, tf.float32) + tf.constant(offset, tf.float32)


def _affine(scale, offset) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(scale, np.float32), np.asarray(offset, np.float32)


_AFFINE = {
    "symmetric": _affine(1 / 127.5, -1.0),
    "unit": _affine(1 / 255.0, 0.0),
    "imagenet": _affine(
        [1 / (255.0 * s) for s in _IMAGENET_STD],
        [-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True)],
    ),
    "caffe": _affine(1.0, [-m for m in _CAFFE_BGR_MEAN]),
    "none": _affine(1.0, 0.0),
}


def preprocess_image(image_bytes: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """Encoded bytes (scalar string) -> float32 [H, W, 3], as every path computes it."""
    # Resized straight from uint8: every resize kernel converts each pixel to float32 exactly as a
    # cast would, so the result is bitwise the same as cast-then-resize (checked for every method,
    # with and without antialias), without a float copy of the full-size image: ~14% less
    # preprocessing CPU on 640x480 photos. Nearest-neighbour keeps uint8, hence the cast after.
    image = tf.image.resize(
        decode_rgb(image_bytes),
        spec.image_size,
        method=spec.resize_method,
        antialias=spec.antialias,
    )
    image = tf.cast(image, tf.float32)
    # Resize kernels with negative lobes overshoot; keep pixels in the decoded range.
    image = tf.clip_by_value(image, 0.0, 255.0)
    return tf.cast(normalize(image, spec.normalization), tf.float32)


# Integer model inputs the shared preprocessing can feed: pixels in [0, 255] fit each exactly.
INTEGER_INPUTS = ("uint8", "int32", "int64")


def to_model_dtype(images: tf.Tensor, dtype: str) -> tf.Tensor:
    """Preprocessed float32 pixels as the model's input dtype.

    An integer input gets the resized pixels (normalisation ``none``, already clipped to
    [0, 255]) rounded to the nearest integer, not truncated, so a pixel of 254.9999 stays 255.
    """
    if dtype in INTEGER_INPUTS:
        return tf.cast(tf.round(images), dtype)
    return images if dtype == "float32" else tf.cast(images, dtype)


def preprocess_batch(image_bytes: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """String [N] -> float32 [N, H, W, 3]; row i equals ``preprocess_image(image_bytes[i])``."""
    height, width = spec.image_size
    return tf.map_fn(
        lambda b: preprocess_image(b, spec),
        image_bytes,
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
    )


def make_preprocess_fn(spec: PreprocessSpec):
    """A traced-once ``tf.function`` of one image, for per-element use from Python."""
    return tf.function(
        lambda image_bytes: preprocess_image(image_bytes, spec),
        input_signature=[tf.TensorSpec([], tf.string)],
    )
