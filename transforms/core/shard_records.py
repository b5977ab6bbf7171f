"""Shard records -> (key, image bytes): the pure parsing behind ``transforms.score.read_shards``.

No Beam and no TensorFlow ops (a ``tf.train.Example`` is parsed with its protobuf class), so
these are tested without a pipeline. The same functions serve the keys-only pass and the image
pass of the readers, so both agree on every record's key.

A record's ``uri`` is ``SHARD#INDEX``: the shard's URI and the record's 0-based position in
it (TFRecord: the record's ordinal from the start of the file; Parquet: the row's ordinal in
the file, i.e. the start row of its row group plus its row within the group).
"""

from __future__ import annotations

import dataclasses
from typing import Any

DEFAULT_IMAGE_FEATURE = "image/encoded"
DEFAULT_KEY_FEATURES = ("image/filename", "image/id")
DEFAULT_IMAGE_COLUMN = "image"
# A struct image column's fields, as image datasets (Hugging Face ``Image``) store them.
STRUCT_BYTES, STRUCT_PATH = "bytes", "path"
ID_COLUMN = "id"


class InvalidRecord(ValueError):
    """A TFRecord payload that is not a serialized ``tf.train.Example``."""


@dataclasses.dataclass(frozen=True)
class ShardProblem:
    """A part of a shard that cannot be read: it becomes one error record.

    ``offset`` is a byte offset: for TFRecord, where the first unreadable record starts in the
    (decompressed) stream; for Parquet, where the unreadable row group starts in the file.
    """

    reason: str
    offset: int
    message: str


def record_uri(shard: str, index: int) -> str:
    return f"{shard}#{index}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _feature_value(feature) -> Any:
    """The first value of a Feature (bytes, int or float), or None when it holds none."""
    for values in (feature.bytes_list.value, feature.int64_list.value, feature.float_list.value):
        if values:
            return values[0]
    return None


def parse_example(
    serialized: bytes, image_feature: str, key_features: tuple[str, ...]
) -> tuple[str | None, bytes | None]:
    """(key, image bytes) of a serialized ``tf.train.Example``; either may be None.

    The key is the first of ``key_features`` that holds a value (bytes as UTF-8 text, numbers
    as their decimal text); the image is the first value of the bytes feature ``image_feature``
    (None when absent or empty).

    Raises:
      InvalidRecord: the payload does not parse as a ``tf.train.Example``.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    try:
        example.ParseFromString(serialized)
    except DecodeError as e:
        raise InvalidRecord(f"not a serialized tf.train.Example: {e}") from None
    features = example.features.feature
    key = None
    for name in key_features:
        if name in features:
            value = _feature_value(features[name])
            if value is not None and value != b"":
                key = _text(value)
                break
    image = None
    if image_feature in features:
        values = features[image_feature].bytes_list.value
        image = values[0] if values and values[0] else None
    return key, image


@dataclasses.dataclass(frozen=True)
class ParquetLayout:
    """Where a Parquet file keeps the image and the key, resolved from its schema.

    ``image_field`` is set when the image column is a struct (its ``bytes`` field); ``path``
    is the struct's ``path`` field when it has one and no ``--key_column`` was given.
    """

    image_column: str | None  # None: the file has no such column
    image_field: str | None
    path_field: str | None
    key_column: str | None

    def columns(self, keys_only: bool) -> list[str]:
        """The columns to read: the key's alone for the keys-only pass."""
        wanted = []
        if self.image_column is not None:
            if not keys_only:
                wanted.append(self.image_column)
            elif self.path_field is not None:
                wanted.append(f"{self.image_column}.{self.path_field}")
        if self.key_column is not None:
            wanted.append(self.key_column)
        return list(dict.fromkeys(wanted))


def parquet_layout(schema, image_column: str, key_column: str | None) -> ParquetLayout:
    """Resolves ``--image_column`` and ``--key_column`` against a ``pyarrow.Schema``.

    The key: ``key_column`` when given; else the image struct's ``path``; else an ``id``
    column; else (per row, also when those are null) ``URI#row-index``.

    Raises:
      ValueError: the image column is neither binary nor a struct with a ``bytes`` field, or
        ``key_column`` is not a column of the file.
    """
    import pyarrow as pa

    names = set(schema.names)
    if key_column is not None and key_column not in names:
        raise ValueError(f"--key_column {key_column!r} is not a column (columns: {sorted(names)})")
    image_field = path_field = None
    if image_column not in names:
        image_column = None
    else:
        image_type = schema.field(image_column).type
        if pa.types.is_struct(image_type):
            fields = {image_type.field(i).name for i in range(image_type.num_fields)}
            if STRUCT_BYTES not in fields:
                raise ValueError(
                    f"--image_column {image_column!r} is a struct without a {STRUCT_BYTES!r} field"
                )
            image_field = STRUCT_BYTES
            path_field = STRUCT_PATH if STRUCT_PATH in fields and key_column is None else None
        elif not any(  # as written by pyarrow, by Spark (large) and by Polars (view)
            is_type(image_type)
            for is_type in (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
        ):
            raise ValueError(
                f"--image_column {image_column!r} holds {image_type}, not binary image bytes "
                f"or a struct with {STRUCT_BYTES!r}"
            )
    if key_column is None and ID_COLUMN in names:
        key_column = ID_COLUMN
    return ParquetLayout(image_column, image_field, path_field, key_column)


def parquet_row(layout: ParquetLayout, row: dict[str, Any], uri: str) -> tuple[str, bytes | None]:
    """(key, image bytes) of one row (a dict of the columns read); the image may be None."""
    image = row.get(layout.image_column) if layout.image_column is not None else None
    path = None
    if isinstance(image, dict):
        path = image.get(layout.path_field) if layout.path_field else None
        image = image.get(layout.image_field)
    key = path if path not in (None, "") else row.get(layout.key_column)
    return (uri if key in (None, "", b"") else _text(key)), (image or None)
