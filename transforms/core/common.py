"""Names shared by every stage: output tags, model-bundle layout, path helpers
(local or not, one spelling per local file, a manifest line's URI).

A stage imports its shared constants from here, never from another stage, so no stage depends
on another for a name (as tensorflow/transform keeps ``beam/common.py``). No Beam, no TensorFlow.
"""

from __future__ import annotations

import glob
import os
import re

# The dead-letter output tag of every stage that can fail per element.
ERRORS = "errors"

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


def parse_manifest_line(line: bytes | str, base_dir: str | None = None) -> str | None:
    """A manifest holds one URI a line; blank lines and ``#`` comments are skipped.

    Only the line ending is removed: ``name.png `` (with its space) is another file than
    ``name.png``. Bytes that are not UTF-8 are kept as surrogates (``os.fsdecode``'s way), so
    a local file with such a name is still found. The URI is ``normalize_uri``'s key; a
    relative line is relative to ``base_dir`` (the launcher's working directory).
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "surrogateescape")
    line = line.rstrip("\r\n")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    return normalize_uri(line, base_dir)


def normalize_uri(uri: str, base_dir: str | None = None) -> str:
    """The key of an input URI: one spelling per local file, the same wherever the job runs.

    A local file's key is its absolute path without ``file://``: a relative path is joined to
    ``base_dir`` (default: the working directory), ``.`` segments and repeated slashes are
    removed, and a ``..`` segment is resolved as the kernel resolves it (the folder before it
    through its symbolic links, then its parent), so ``x/a.png``, ``./x//a.png``,
    ``file:///w/x/a.png`` and ``/w/y/../x/a.png`` are one key. The file's own name is never
    resolved (a symbolic link keeps its name). Remote URIs are left alone (``gs://b/a//c`` and
    ``gs://b/a/c`` are different objects).
    """
    if not is_local(uri):
        return uri
    path = local_path(uri)
    if not path.startswith("/"):
        path = f"{base_dir or os.getcwd()}/{path}"
    parts = [part for part in re.sub("/+", "/", path).split("/") if part not in ("", ".")]
    if ".." in parts:
        last = len(parts) - 1 - parts[::-1].index("..")
        head = os.path.realpath("/" + "/".join(parts[: last + 1]))
        parts = [*head.split("/"), *parts[last + 1 :]]
        parts = [part for part in parts if part]
    return "/" + "/".join(parts)


def absolute_pattern(pattern: str, base_dir: str | None = None) -> str:
    """A local relative file pattern made absolute against ``base_dir`` (default: the working
    directory), its characters quoted so none of them is a wildcard; others unchanged."""
    if not is_local(pattern) or local_path(pattern).startswith("/"):
        return pattern
    return f"{glob.escape(base_dir or os.getcwd())}/{local_path(pattern)}"


# Beside summary.json until the launcher has drawn the report from both, then removed:
# thumbnails are for the report, and summary.json stays small and greppable.
THUMBNAILS_JSON = ".thumbnails.json"
