"""Names shared by every stage: output tags, metric names, model-bundle layout, path helpers
(local or not, one spelling per local file, a manifest line's URI).

A stage imports its shared constants from here, never from another stage, so no stage depends
on another for a name (as tensorflow/transform keeps ``beam/common.py``). No Beam, no TensorFlow.
"""

from __future__ import annotations

import re

# The dead-letter output tag of every stage that can fail per element.
ERRORS = "errors"

# The namespace of every ``Metrics.counter`` the job reports (run.json reads them back).
METRICS_NAMESPACE = "batch_score"

# The model bundle's layout (see ``pipeline.export``).
BUNDLE_SPEC_ASSET = "assets/preprocessing.json"
BUNDLE_LABELS_ASSET = "assets/labels.txt"
SCORE_TENSOR_SIGNATURE = "score_tensor"
SERVING_SIGNATURE = "serving_default"
# The bytes feature of the serialized tf.train.Example that ``serving_default`` parses.
IMAGE_FEATURE = "image"

# Choices of the shared preprocessing and of the job's input and output formats: named here,
# without TensorFlow, so the command lines' --help can list them without importing it.
NORMALIZATIONS = ("symmetric", "unit", "imagenet", "caffe", "none")
RESIZE_METHODS = ("bilinear", "bicubic", "area", "nearest", "lanczos3", "mitchellcubic")
INPUT_FORMATS = ("files", "tfrecord", "parquet")
OUTPUT_FORMATS = ("jsonl", "parquet", "tfrecord")


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local filesystem (no scheme, or ``file://``)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.get_scheme(path) in (None, "file")


def local_path(path: str) -> str:
    """A local ``path`` without its ``file://`` scheme, as ``os`` functions take it."""
    return path.removeprefix("file://")


def parse_manifest_line(line: bytes | str) -> str | None:
    """A manifest holds one URI a line; blank lines and ``#`` comments are skipped.

    Only the line ending is removed: ``name.png `` (with its space) is another file than
    ``name.png``. Bytes that are not UTF-8 are kept as surrogates (``os.fsdecode``'s way), so
    a local file with such a name is still found.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "surrogateescape")
    line = line.rstrip("\r\n")
    return normalize_uri(line) if line.strip() and not line.lstrip().startswith("#") else None


def normalize_uri(uri: str) -> str:
    """One spelling per local file: ``./`` segments and repeated slashes removed.

    ``..`` is kept (through a symbolic link it is not the parent), and remote URIs are left
    alone (``gs://b/a//c`` and ``gs://b/a/c`` are different objects).
    """
    if not is_local(uri) or uri.startswith("file://"):
        return uri
    parts = [part for part in re.sub("/+", "/", uri).split("/") if part != "."]
    return "/".join(parts) or ("/" if uri.startswith("/") else ".")
