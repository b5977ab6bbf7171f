"""The one shared image preprocessing: encoded bytes -> float32 [H, W, 3].

Every path that turns bytes into a model input imports this module: the batch pipeline, the
per-element reconciliation, the exported serving signatures and ``predict_one``. Nothing
re-implements it, so a score difference can never come from two copies drifting apart.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import tensorflow as tf

# Named in common (no TensorFlow) so --help can list them; importable from here as before.
from transforms.core.common import NORMALIZATIONS, RESIZE_METHODS

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
    An animated WebP, which TensorFlow's decoder refuses (and with ``channels=0`` corrupts the
    heap), is decoded as its first frame: that frame's bitstream rewrapped as a still WebP.
    """
    image = tf.case(
        [
            (_is_animated_webp(image_bytes), lambda: _first_webp_frame(image_bytes)),
            (_is_webp(image_bytes), lambda: _decode_still_webp(image_bytes)),
        ],
        default=lambda: tf.io.decode_image(
            image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
        ),
    )
    image.set_shape([None, None, 3])
    return image


# --- WebP, in graph ops (so the exported serving signatures decode it alike) -------------------
# RIFF container: "RIFF" size "WEBP", then chunks (fourcc, little-endian u32 size, payload padded
# to even). An animation starts with VP8X (flag 0x02 set, canvas size), then ANIM, then one
# ANMF chunk per frame: X/2, Y/2, width-1, height-1 (24 bits each), duration, flags, and the
# frame's own chunks: an optional ALPH, then its VP8 or VP8L bitstream.
_BYTES = tf.constant([bytes([i]) for i in range(256)])


def _substr(data: tf.Tensor, offset, size) -> tf.Tensor:
    """``tf.strings.substr`` that gives b"" past the end instead of an error (whose message
    would quote the bytes)."""
    length = tf.cast(tf.strings.length(data), tf.int64)
    return tf.strings.substr(data, tf.minimum(tf.cast(offset, tf.int64), length), size)


def _is_webp(data: tf.Tensor) -> tf.Tensor:
    return tf.logical_and(_substr(data, 0, 4) == "RIFF", _substr(data, 8, 4) == "WEBP")


def _is_animated_webp(data: tf.Tensor) -> tf.Tensor:
    return tf.logical_and(
        tf.logical_and(_is_webp(data), _substr(data, 12, 4) == "VP8X"),
        tf.not_equal(tf.bitwise.bitwise_and(_uint(data, 20, 1), 2), 0),
    )


def _decode_still_webp(data: tf.Tensor) -> tf.Tensor:
    # channels=0, alpha dropped after: TensorFlow's WebP decoder refuses 3 channels of an image
    # with alpha.
    return tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)[..., :3]


def _uint(data: tf.Tensor, offset, size: int) -> tf.Tensor:
    """The little-endian unsigned integer of ``size`` bytes at ``offset``, as int64 (0 past the
    end, so a cut file ends the chunk walk rather than reading garbage)."""
    raw = tf.io.decode_raw(_substr(data, offset, size), tf.uint8)
    raw = tf.pad(tf.cast(raw, tf.int64), [[0, size - tf.shape(raw)[0]]])
    return tf.reduce_sum(tf.bitwise.left_shift(raw, tf.range(size, dtype=tf.int64) * 8))


def _chunk_end(data: tf.Tensor, offset) -> tf.Tensor:
    size = _uint(data, offset + 4, 4)
    return offset + 8 + size + size % 2


def _first_webp_frame(data: tf.Tensor) -> tf.Tensor:
    length = tf.cast(tf.strings.length(data), tf.int64)
    offset = tf.while_loop(
        lambda offset: tf.logical_and(offset + 8 <= length, _substr(data, offset, 4) != "ANMF"),
        lambda offset: [_chunk_end(data, offset)],
        [tf.constant(12, tf.int64)],
    )[0]
    tf.debugging.assert_less_equal(offset + 24, length, "a WebP animation without a frame")
    x, y = _uint(data, offset + 8, 3) * 2, _uint(data, offset + 11, 3) * 2
    frame = offset + 24
    frame = tf.where(_substr(data, frame, 4) == "ALPH", _chunk_end(data, frame), frame)
    bitstream = _substr(data, frame, _chunk_end(data, frame) - frame)
    riff_size = tf.strings.length(bitstream) + 4
    size_bytes = tf.bitwise.bitwise_and(tf.bitwise.right_shift(riff_size, tf.range(4) * 8), 255)
    still = tf.strings.join(
        ["RIFF", tf.strings.reduce_join(tf.gather(_BYTES, size_bytes)), "WEBP", bitstream]
    )
    # The first frame over the canvas, as libwebp composites it: transparent (black) around.
    canvas_w, canvas_h = _uint(data, 24, 3) + 1, _uint(data, 27, 3) + 1
    return tf.image.pad_to_bounding_box(
        _decode_still_webp(still), *(tf.cast(v, tf.int32) for v in (y, x, canvas_h, canvas_w))
    )


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
    return resize_and_normalize(decode_rgb(image_bytes), spec)


def resize_and_normalize(pixels: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """Decoded uint8 [h, w, 3] -> float32 [H, W, 3]: everything after the decoder, shared by
    TensorFlow's decode and the Pillow decode reference (``transforms.score.pillow_reference``)."""
    # Resized straight from uint8: every resize kernel converts each pixel to float32 exactly as a
    # cast would, so the result is bitwise the same as cast-then-resize (checked for every method,
    # with and without antialias), without a float copy of the full-size image: ~14% less
    # preprocessing CPU on 640x480 photos. Nearest-neighbour keeps uint8, hence the cast after.
    image = tf.image.resize(
        pixels,
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


def make_pixels_fn(spec: PreprocessSpec):
    """A traced-once ``tf.function`` of ``resize_and_normalize``, for decoded uint8 pixels."""
    return tf.function(
        lambda pixels: resize_and_normalize(pixels, spec),
        input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)],
    )


# Cached: a runner may run several bundles of one stage at once (Prism splits the scoring stage
# into four or more), each in a DoFn instance of its own, and a new tf.function traces again
# (the trace was a third of the decode thread's CPU on Prism, issue 20).
@functools.cache
def make_preprocess_fn(spec: PreprocessSpec):
    """A traced-once ``tf.function`` of one image, for per-element use from Python; one per
    spec and process, shared by its callers."""
    return tf.function(
        lambda image_bytes: preprocess_image(image_bytes, spec),
        input_signature=[tf.TensorSpec([], tf.string)],
    )
