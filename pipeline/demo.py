"""The embedded default: a small digit classifier and labelled sample images, built locally.

Nothing may be downloaded at run time, so the demo is built from the 1,797 labelled 8x8
handwritten digits that scikit-learn ships inside its wheel: upscaled to 64x64 RGB PNGs, a
seeded split, a small CNN (with BatchNorm and Dropout, so inference mode matters) trained on
the training split through the shared preprocessing, exported as a model bundle. The held-out
split becomes ``DATA_DIR/sample/<label>/<id>.png``, so anyone can check the labels.

    python -m pipeline.demo [--data_dir DIR]     # builds only what is missing

DATA_DIR defaults to ``data/`` of the checkout this package runs from (whatever the working
directory), or ``~/.cache/batch-score`` for an installed package: where the job looks for its
default model (``pipeline.flags.default_model``).
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np

from pipeline import cli, quiet
from pipeline.flags import EXIT_OK, EXIT_USAGE, UsageError, default_data_dir
from pipeline.tool_flags import DEMO

LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
IMAGE_SIZE = (32, 32)
SAMPLE_PER_CLASS = 20
SEED = 20261125


def bundle_path(data_dir: str) -> str:
    return os.path.join(data_dir, "demo_bundle")


def sample_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "sample")


def digit_png(pixels: np.ndarray) -> bytes:
    """An 8x8 digit (values 0..16) as a 64x64 RGB PNG: dark ink on a warm paper background."""
    from PIL import Image

    ink = (pixels / 16.0)[..., None]
    paper, pen = np.array([245, 240, 225]), np.array([20, 30, 90])
    rgb = (paper * (1 - ink) + pen * ink).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB").resize((64, 64), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _split(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split: SAMPLE_PER_CLASS held-out images of each digit, the rest for training."""
    rng = np.random.default_rng(SEED)
    held_out = np.concatenate(
        [
            rng.choice(np.flatnonzero(targets == digit), SAMPLE_PER_CLASS, replace=False)
            for digit in range(len(LABELS))
        ]
    )
    train = np.setdiff1d(np.arange(len(targets)), held_out)
    return train, np.sort(held_out)


def _build_net():
    import keras

    inputs = keras.Input((*IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def build(data_dir: str | None = None, log=print) -> str:
    """Builds the sample images and the bundle under ``data_dir`` (default: where the job looks
    for its default model) if missing; returns the bundle."""
    data_dir = data_dir or default_data_dir()
    bundle = bundle_path(data_dir)
    samples = sample_dir(data_dir)
    if os.path.isdir(bundle) and os.path.isdir(samples):
        return bundle

    quiet.import_tensorflow_quietly()
    import keras
    import tensorflow as tf
    from sklearn.datasets import load_digits

    from pipeline.export import export_bundle
    from transforms.core.preprocess import PreprocessSpec, preprocess_batch

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    digits = load_digits()
    pngs = [digit_png(image) for image in digits.images]
    train, held_out = _split(digits.target)

    spec = PreprocessSpec(IMAGE_SIZE, "symmetric")
    # Train on exactly what scoring will feed the model: the shared preprocessing of the PNGs
    # (traced once; an eager map_fn would run op by op, 20x slower).
    preprocess = tf.function(lambda encoded: preprocess_batch(encoded, spec))
    x_train = preprocess(tf.constant([pngs[i] for i in train])).numpy()
    y_train = digits.target[train]
    net = _build_net()
    net.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    log(f"training the demo digit classifier on {len(train)} images ...")
    net.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0, shuffle=True)

    x_held = preprocess(tf.constant([pngs[i] for i in held_out])).numpy()
    accuracy = float(
        np.mean(np.argmax(net.predict(x_held, verbose=0), 1) == digits.target[held_out])
    )
    log(f"held-out top-1 accuracy: {accuracy:.1%} on {len(held_out)} sample images")

    tmp_bundle = bundle + ".tmp"
    export_bundle(net, tmp_bundle, spec, LABELS)
    for index in held_out:
        label_dir = os.path.join(samples, LABELS[digits.target[index]])
        os.makedirs(label_dir, exist_ok=True)
        with open(os.path.join(label_dir, f"{index:04d}.png"), "wb") as f:
            f.write(pngs[index])
    os.replace(tmp_bundle, bundle)  # the bundle appears last: its presence means "built"
    return bundle


def main(argv=None) -> int:
    """The command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if cli.wants_help(argv):
        cli.parser_for(DEMO).print_help()
        return EXIT_OK
    quiet.configure_logging()
    try:
        args = cli.parse(DEMO, argv)
    except UsageError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"demo bundle: {build(args.data_dir)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
