"""The shared preprocessing: one function, same result on every path."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import image_bytes

from transforms.core.preprocess import (
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


# The documented affine map of each normalisation, written out independently of the code:
# out = pixel * scale + offset per channel (caffe first reverses RGB to BGR).
_EXPECTED_AFFINE = {
    "symmetric": (1 / 127.5, -1.0),
    "unit": (1 / 255.0, 0.0),
    "none": (1.0, 0.0),
    "imagenet": (
        [1 / (255.0 * s) for s in (0.229, 0.224, 0.225)],
        [-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True)],
    ),
    "caffe": (1.0, [-103.939, -116.779, -123.68]),
}


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_each_normalization_is_its_documented_affine_map(normalization):
    data = tf.constant(image_bytes(1))
    pixels = preprocess_image(data, PreprocessSpec((8, 8), "none")).numpy().astype(np.float64)
    out = preprocess_image(data, PreprocessSpec((8, 8), normalization)).numpy()
    if normalization == "caffe":
        pixels = pixels[..., ::-1]
    scale, offset = (np.asarray(v, np.float64) for v in _EXPECTED_AFFINE[normalization])
    np.testing.assert_allclose(out, pixels * scale + offset, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    "normalization, black, white",
    [("symmetric", -1.0, 1.0), ("unit", 0.0, 1.0), ("none", 0.0, 255.0)],
)
def test_black_and_white_pixels_map_to_the_ends_of_the_range_exactly(normalization, black, white):
    import io

    from PIL import Image

    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:, 4:] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    spec = PreprocessSpec((8, 8), normalization, resize_method="nearest")
    out = preprocess_image(tf.constant(buffer.getvalue()), spec).numpy()
    assert set(np.unique(out[:, :4]).tolist()) == {black}
    assert set(np.unique(out[:, 4:]).tolist()) == {white}


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P"])
def test_grayscale_alpha_and_palette_decode_as_their_rgb_conversion(mode):
    """Same pixels as Pillow's own conversion to RGB (alpha dropped, grey replicated)."""
    import io

    from PIL import Image

    data = image_bytes(5, mode=mode)
    as_rgb = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(as_rgb, "PNG")
    spec = PreprocessSpec((8, 8), "none")
    out = preprocess_image(tf.constant(data), spec).numpy()
    expected = preprocess_image(tf.constant(as_rgb.getvalue()), spec).numpy()
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out, expected)
    if mode in ("L", "LA"):
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_16_bit_images_become_8_bit_by_scaling_not_clipping():
    import io

    from PIL import Image

    wide = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, "PNG")  # a 16-bit greyscale PNG
    spec = PreprocessSpec((8, 8), "none", resize_method="nearest")
    out = preprocess_image(tf.constant(buffer.getvalue()), spec).numpy()
    np.testing.assert_allclose(out[..., 0], wide / 257.0, atol=1.0)


def test_caffe_is_bgr_with_mean_subtracted():
    out = preprocess_image(tf.constant(image_bytes(2)), PreprocessSpec((8, 8), "caffe")).numpy()
    raw = preprocess_image(tf.constant(image_bytes(2)), PreprocessSpec((8, 8), "none")).numpy()
    np.testing.assert_allclose(out[..., 0], raw[..., 2] - 103.939, atol=1e-4)


def test_animated_gif_gives_its_first_frame():
    import io

    from PIL import Image

    frames = [Image.new("RGB", (12, 12), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    out = preprocess_image(tf.constant(buffer.getvalue()), PreprocessSpec((4, 4), "none")).numpy()
    np.testing.assert_array_equal(out[..., 0], 255.0)
    np.testing.assert_array_equal(out[..., 1:], 0.0)


@pytest.mark.parametrize("lookahead", [0, 3, 64])
def test_decoding_ahead_keeps_order_errors_and_every_element(lookahead):
    """Decoding ahead on a thread: outputs in input order, failures still dead letters, and the
    elements still in flight at the bundle's end are emitted, not lost (64 > the input)."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from transforms.score.preprocess_images import Preprocess

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
