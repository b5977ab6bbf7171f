"""Records that flow between stages and into the outputs, and their formatting.

Plain data and pure functions: no Beam, no TensorFlow, so they are tested without a pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from typing import Any

import numpy as np

# Stable dead-letter reason codes (users filter and alert on these; never rename one).
EMPTY_FILE = "empty_file"
READ_ERROR = "read_error"
NOT_FOUND = "not_found"
UNSUPPORTED_FORMAT = "unsupported_format"
TOO_MANY_PIXELS = "too_many_pixels"
TRUNCATED_IMAGE = "truncated_image"
CORRUPT_IMAGE = "corrupt_image"
MODEL_ERROR = "model_error"
# Read stage: refused from the file's metadata, before anything is opened for reading.
NOT_A_REGULAR_FILE = "not_a_regular_file"  # a directory, FIFO, socket or device
BROKEN_SYMLINK = "broken_symlink"  # a symbolic link whose target does not exist
SYMLINK_LOOP = "symlink_loop"  # symbolic links that point at each other
FILE_TOO_LARGE = "file_too_large"  # over --max_file_bytes (by its size, or while reading)
# Preprocess stage: any other failure of the TF preprocessing on one element.
PREPROCESS_ERROR = "preprocess_error"
# Shard inputs (--input_format tfrecord|parquet).
MISSING_IMAGE = "missing_image"
INVALID_RECORD = "invalid_record"
DUPLICATE_KEY = "duplicate_key"
CORRUPT_SHARD = "corrupt_shard"
UNSUPPORTED_SHARD = "unsupported_shard"


def error_detail(error: Exception) -> str:
    """An exception in one line, in its own words. TensorFlow puts those on the first line,
    after a ``{{function_node ...}}`` prefix, and ends with a line naming the graph node."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text.splitlines()[0])


class ImageError(Exception):
    """A per-element failure: becomes a dead-letter record, never fails the job."""

    def __init__(self, stage: str, reason: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.reason = reason
        self.message = message

    def record(self, uri: str, key: str | None = None) -> dict[str, Any]:
        """The error record; a shard record's error also names its ``key`` (a file's key is
        its URI, so file errors keep the four fields)."""
        record = {"uri": uri, "stage": self.stage, "reason": self.reason, "message": self.message}
        if key is not None and key != uri:
            record["key"] = key
        return record


# An encoded image as the readers emit it (``split_encoded``): (uri, bytes) from files,
# (key, (bytes, SHARD#INDEX)) from shards.
EncodedImage = tuple[str, bytes] | tuple[str, tuple[bytes, str]]


def split_encoded(element: EncodedImage) -> tuple[str, bytes, str]:
    """(key, bytes, uri) of an encoded image as a reader emits it.

    Readers emit (key, value) pairs, so a stage can join or group on the key: an image file
    as (uri, bytes) (its URI is its key), a shard record as (key, (bytes, uri)) with the uri
    ``SHARD#INDEX``.
    """
    key, value = element
    if isinstance(value, tuple):
        data, uri = value
        return key, data, uri
    return key, value, key


@dataclasses.dataclass
class Preprocessed:
    """One decoded and preprocessed image on its way to the model."""

    uri: str
    tensor: np.ndarray  # float32 [H, W, 3]
    raw: bytes | None = None  # the encoded image; SampleForReconciliation keeps it for the sample
    sampled: bool = False  # in the reconciliation sample (decided once, by SampleForReconciliation)
    key: str | None = None  # the record key; None: the URI (an image file's key)
    exif_orientation: int = 1  # read from the header, not applied (1: the default)

    def __post_init__(self):
        if self.key is None:
            self.key = self.uri


@dataclasses.dataclass
class Scored:
    """The model's output for one element, with the batch it was scored in.

    ``tensor`` and ``raw`` are kept only for elements sampled for reconciliation, which
    rescores them (and shows the worst as thumbnails).
    """

    uri: str
    scores: np.ndarray | None
    batch_size: int
    batch_id: str
    position: int
    error: ImageError | None = None
    tensor: np.ndarray | None = None
    raw: bytes | None = None
    sampled: bool = False
    key: str | None = None  # the record key; None: the URI (an image file's key)
    exif_orientation: int = 1

    def __post_init__(self):
        if self.key is None:
            self.key = self.uri


def stable_fraction(key: str) -> float:
    """A uniform value in [0, 1) from the key alone: same key, same value, on every run."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def is_sampled(key: str, fraction: float) -> bool:
    """Whether an element belongs to the reconciliation sample."""
    return fraction >= 1.0 or stable_fraction(key) < fraction


def sample_share(fraction: float, minimum: int, matched: int | None, skipped: int = 0) -> float:
    """The reconciliation sample's share of the job: ``effective_fraction`` of what the job
    scores (``matched - skipped``: inputs ``--skip_existing`` left out are never compared), or
    ``fraction`` itself when the matched count is unknown."""
    if matched is None:
        return fraction
    return effective_fraction(fraction, minimum, matched - skipped)


def effective_fraction(fraction: float, minimum: int, matched: int) -> float:
    """The share of the job that is compared: ``max(fraction, min(1, minimum / matched))``.

    ``fraction`` 0 turns reconciliation off whatever ``minimum`` says. Small jobs are compared
    whole (a bound from 8 comparisons proves nothing); large ones pay only ``fraction``.
    """
    if fraction <= 0:
        return 0.0
    if matched <= 0:
        return 1.0
    return max(fraction, min(1.0, minimum / matched))


def batch_id_for(keys: list[str]) -> str:
    """An id for a batch derived from its members, so reruns give the same ids."""
    digest = hashlib.blake2b("\n".join(keys).encode("utf-8"), digest_size=8)
    return digest.hexdigest()


def label_for(index: int, labels: list[str] | None) -> str:
    if labels and 0 <= index < len(labels):
        return labels[index]
    return str(index)


def top_k(scores: np.ndarray, k: int, labels: list[str] | None) -> list[dict[str, Any]]:
    """The k best classes, best first; ties keep the lower index first (stable)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        {"index": int(i), "label": label_for(int(i), labels), "score": float(scores[i])}
        for i in order
    ]


def prediction_record(
    scored: Scored,
    k: int,
    labels: list[str] | None,
    model_digest: str,
    write_scores: bool,
) -> dict[str, Any]:
    """The prediction record of the output contract.

    Non-finite scores are flagged, not ranked: a NaN has no place in a top-k list, and JSON
    has no NaN. With ``--write_scores`` they are written as null.
    """
    scores = scored.scores
    finite = bool(np.all(np.isfinite(scores)))
    record: dict[str, Any] = {
        "key": scored.key,
        "uri": scored.uri,
        "top_k": top_k(scores, k, labels) if finite else [],
        "batch_size": scored.batch_size,
        "batch_id": scored.batch_id,
        "position": scored.position,
        "model_digest": model_digest,
    }
    if not finite:
        record["non_finite"] = True
    if write_scores:
        record["scores"] = [float(v) if math.isfinite(v) else None for v in scores.tolist()]
    return record
