"""The tools' command lines: ``EXPORT``, ``PREDICT_ONE``, ``DEMO`` and ``SHARD``, their flags and
closing text. No Beam, no TensorFlow (``pipeline.flags``).
"""

from __future__ import annotations

from pipeline.flags import MAX_FILE_BYTES, Command, Flag
from transforms.core.common import INPUT_FORMATS, NORMALIZATIONS, RESIZE_METHODS

EXPORT_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "export",
        (
            Flag("--model", "the Keras .keras file to export", argparse={"required": True}),
            Flag(
                "--output",
                "the bundle directory to write, local or any Beam filesystem (gs://)",
                argparse={"required": True},
            ),
            Flag("--labels", "a text file with one label a line, in class order"),
            Flag(
                "--image_size",
                "resize images to H x W",
                shown_default="the model's input shape",
                argparse={"type": int, "nargs": 2, "metavar": ("H", "W")},
            ),
            Flag(
                "--normalization",
                "pixel normalisation",
                shown_default="symmetric, or none for a model that takes integer pixels",
                argparse={"choices": NORMALIZATIONS},
            ),
            Flag(
                "--resize_method", "resize method", "bilinear", argparse={"choices": RESIZE_METHODS}
            ),
        ),
    ),
)

PREDICT_ONE_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "predict_one",
        (
            Flag(
                "--model",
                "the model bundle, as deployed online",
                argparse={"required": True},
            ),
            Flag("--against", "a batch job's output directory to compare with"),
            Flag("--top_k", "labels shown", 5, argparse={"type": int}),
            MAX_FILE_BYTES,
            Flag(
                "--layers",
                "with --against: the layer profile of the image in its batch (the run's "
                "members and position) against the image alone; --model may then be any model",
                False,
                argparse={"action": "store_true"},
            ),
        ),
    ),
)

DEMO_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "demo",
        (
            Flag(
                "--data_dir",
                "where demo_bundle/ and sample/ are built (only what is missing)",
                shown_default="data/ of this checkout, or ~/.cache/batch-score when installed",
            ),
        ),
    ),
)

# Shards are the job's input formats other than plain files.
SHARD_FORMATS = tuple(fmt for fmt in INPUT_FORMATS if fmt != "files")
SHARD_COMPRESSIONS = ("none", "gzip")
SHARD_KEYS = ("uri", "relative")

SHARD_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "inputs",
        (
            Flag(
                "--input",
                "file pattern of images, local or gs://; repeatable",
                argparse={"action": "append", "required": True, "metavar": "PATTERN"},
            ),
            Flag(
                "--keys",
                "the key stored per image: uri (its full URI, as a files run keys it) or "
                "relative (its path below the inputs' common folder)",
                "uri",
                argparse={"choices": SHARD_KEYS},
            ),
            MAX_FILE_BYTES,
        ),
    ),
    (
        "shards",
        (
            Flag(
                "--output",
                "a new or empty directory, local or gs://",
                argparse={"required": True, "metavar": "DIR"},
            ),
            Flag(
                "--format",
                "tfrecord: tf.Example records; parquet: one struct column image {bytes, path}",
                argparse={"required": True, "choices": SHARD_FORMATS},
            ),
            Flag("--records_per_shard", "images per shard", 1000, argparse={"type": int}),
            Flag(
                "--compression",
                "tfrecord: gzip the shard (.tfrecord.gz); parquet: the column codec",
                "none",
                argparse={"choices": SHARD_COMPRESSIONS},
            ),
        ),
    ),
)

SHARD_EPILOG = """\
exit status: 0 success; 2 bad arguments (unknown or misspelled flags included), a pattern that
matches nothing, a file that cannot be read or an output that is not empty (one line says
which); 130 interrupted.
"""

PREDICT_ONE_EPILOG = """\
exit status: 0 success; 1 the serving signature failed on the image, or the --against output
holds no prediction for it; 2 bad arguments or an unusable model or image (one line says
which); 130 interrupted.
"""


EXPORT = Command(
    "python -m pipeline.export",
    "Exports a Keras model as a model bundle: a SavedModel with the shared preprocessing inside.",
    EXPORT_FLAGS,
    usage="--model M.keras --output BUNDLE [flags]",
)
PREDICT_ONE = Command(
    "python -m pipeline.predict_one",
    "Scores one image exactly as the online path does (serving_default via tfx-bsl), "
    "optionally beside its prediction in a batch job's output.",
    PREDICT_ONE_FLAGS,
    PREDICT_ONE_EPILOG,
    positional=(("image", "an image path or URI (local or gs://)"),),
    usage="IMAGE --model BUNDLE [--against OUTPUT] [flags]",
)
DEMO = Command(
    "python -m pipeline.demo",
    "Builds the embedded default: a small digit classifier (model bundle) and labelled sample "
    "images, trained locally from scikit-learn's digits; nothing is downloaded.",
    DEMO_FLAGS,
)
SHARD = Command(
    "python -m pipeline.shard",
    "Packs image files into TFRecord or Parquet shards for the job's --input_format: each "
    "image's bytes as read, with its key.",
    SHARD_FLAGS,
    SHARD_EPILOG,
    usage="--input PATTERN --output DIR --format tfrecord|parquet [flags]",
)
