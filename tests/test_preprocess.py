"""The shared preprocessing: one function, same result on every path."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import image_bytes

from transforms.preprocess import (
    NORMALIZATIONS,
    PreprocessSpec,
    make_preprocess_fn,
    preprocess_batch,
    preprocess_image,
)


def test_spec_round_trips_through_json():
    spec = PreprocessSpec((24, 32), "imagenet", "bicubic", antialias=False)
    assert PreprocessSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    "kwargs", [{"normalization": "bogus"}, {"resize_method": "fancy"}, {"image_size": (0, 4)}]
)
def test_spec_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        PreprocessSpec(**({"image_size": (8, 8)} | kwargs))


def test_same_bytes_give_the_same_tensor_bitwise():
    spec = PreprocessSpec((16, 16))
    data = image_bytes(3, fmt="JPEG")
    first = make_preprocess_fn(spec)(tf.constant(data)).numpy()
    second = preprocess_image(tf.constant(data), spec).numpy()
    assert first.shape == (16, 16, 3) and first.dtype == np.float32
    assert first.tobytes() == second.tobytes()


def test_batch_stacked_equals_per_element():
    spec = PreprocessSpec((16, 16), "unit")
    encoded = [image_bytes(i, size=(10 + i, 30 - i)) for i in range(6)]
    batched = preprocess_batch(tf.constant(encoded), spec).numpy()
    single = np.stack([preprocess_image(tf.constant(b), spec).numpy() for b in encoded])
    assert batched.tobytes() == single.tobytes()


@pytest.mark.parametrize(
    "normalization, low, high",
    [
        ("symmetric", -1, 1),
        ("unit", 0, 1),
        ("none", 0, 255),
        ("caffe", -124, 152),
        ("imagenet", -2.2, 2.7),
    ],
)
def test_normalizations_map_pixels_into_their_range(normalization, low, high):
    assert normalization in NORMALIZATIONS
    out = preprocess_image(tf.constant(image_bytes(1)), PreprocessSpec((8, 8), normalization))
    assert low <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= high


def test_caffe_is_bgr_with_mean_subtracted():
    out = preprocess_image(tf.constant(image_bytes(2)), PreprocessSpec((8, 8), "caffe")).numpy()
    raw = preprocess_image(tf.constant(image_bytes(2)), PreprocessSpec((8, 8), "none")).numpy()
    np.testing.assert_allclose(out[..., 0], raw[..., 2] - 103.939, atol=1e-4)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16"])
def test_grayscale_alpha_palette_and_16_bit_become_rgb(mode):
    data = image_bytes(5, mode=mode)
    out = preprocess_image(tf.constant(data), PreprocessSpec((8, 8), "none")).numpy()
    assert out.shape == (8, 8, 3)
    assert out.max() <= 255


def test_animated_gif_gives_its_first_frame():
    import io

    from PIL import Image

    frames = [Image.new("RGB", (12, 12), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    out = preprocess_image(tf.constant(buffer.getvalue()), PreprocessSpec((4, 4), "none")).numpy()
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


@pytest.mark.parametrize("lookahead", [0, 3, 64])
def test_decoding_ahead_keeps_order_errors_and_every_element(lookahead):
    """Decoding ahead on a thread: outputs in input order, failures still dead letters, and the
    elements still in flight at the bundle's end are emitted, not lost (64 > the input)."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from transforms.preprocess_stage import Preprocess

    spec = PreprocessSpec((16, 16))
    inputs = [(f"img{i:02d}", b"not an image" if i % 7 == 3 else image_bytes(i)) for i in range(20)]
    fn = make_preprocess_fn(spec)
    expected = [
        (uri, fn(tf.constant(data)).numpy().tobytes())
        for uri, data in inputs
        if data != b"not an image"
    ]
    with TestPipeline() as p:
        result = (
            p
            | beam.Create([inputs])  # one element, so the order below is the decoder's
            | beam.FlatMap(lambda batch: batch)
            | Preprocess(spec, max_pixels=10**6, lookahead=lookahead)
        )
        images = result.images | beam.Map(lambda x: (x.uri, x.tensor.tobytes()))
        assert_that(
            images | "InOrder" >> beam.combiners.ToList(),
            equal_to([expected]),
            label="images in input order",
        )
        assert_that(
            result.errors | beam.Map(lambda e: (e["uri"], e["reason"])),
            equal_to(
                [(uri, "unsupported_format") for uri, data in inputs if data == b"not an image"]
            ),
            label="errors",
        )
