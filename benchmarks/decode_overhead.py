"""Cost of the WebP routing in the shared decode: a 640x480 JPEG through ``make_preprocess_fn``
(which checks for WebP and animated WebP first) against ``tf.io.decode_image`` alone, the same
resize and normalisation, interleaved in one process.

    python -m benchmarks.decode_overhead
"""

from __future__ import annotations

import io
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from transforms.core import preprocess


def main(rounds: int = 9, calls: int = 100) -> None:
    spec = preprocess.PreprocessSpec((224, 224))
    pixels = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    data = tf.constant(buffer.getvalue())
    shared = preprocess.make_preprocess_fn(spec)

    def decode_only(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        return preprocess.resize_and_normalize(tf.ensure_shape(image, [None, None, 3]), spec)

    plain = tf.function(decode_only, input_signature=[tf.TensorSpec([], tf.string)])
    assert np.array_equal(shared(data).numpy(), plain(data).numpy())
    times = {"shared": [], "decode_image only": []}
    for _ in range(rounds):
        for name, fn in (("decode_image only", plain), ("shared", shared)):
            start = time.perf_counter()
            for _ in range(calls):
                fn(data)
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    medians = {name: sorted(values)[rounds // 2] for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name}: median {value:.2f} ms/image, min {min(times[name]):.2f}")
    print(
        f"ratio shared / decode_image only: {medians['shared'] / medians['decode_image only']:.3f}"
    )


if __name__ == "__main__":
    main()
