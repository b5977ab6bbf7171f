"""What a file's first and last bytes say it is, for the hint a job gives when it read files as
another ``--input_format`` than theirs (TFRecord shards read as images, and the like).

Pure: takes bytes, reads nothing. Names only a container format, never the content.
"""

from __future__ import annotations

import struct
import zlib

import google_crc32c  # a dependency of apache-beam[gcp] (google-cloud-storage)

# How much of a file is enough to recognise it (a gzip member inflates its first record).
HEAD_BYTES = 64 * 1024
TAIL_BYTES = 4

PARQUET_MAGIC = b"PAR1"
_IMAGE_MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")

# The --input_format that reads each kind of file.
FORMAT_OF = {"tfrecord": "tfrecord", "parquet": "parquet", "image": "files"}
NAMES = {"tfrecord": "TFRecord files", "parquet": "Parquet files", "image": "image files"}
ONE = {"tfrecord": "a TFRecord file", "parquet": "a Parquet file", "image": "an image file"}


def _is_tfrecord(head: bytes) -> bool:
    """A TFRecord starts with a little-endian length and its masked CRC32C (no magic)."""
    if len(head) < 12:
        return False
    crc = google_crc32c.value(head[:8])
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    return struct.unpack("<I", head[8:12])[0] == masked


def _inflated(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
    except zlib.error:
        return b""


def kind_of(head: bytes, tail: bytes = b"") -> str | None:
    """``tfrecord``, ``parquet`` or ``image`` when the bytes say so (a gzipped TFRecord too),
    else None."""
    if head.startswith(PARQUET_MAGIC) and (not tail or tail.endswith(PARQUET_MAGIC)):
        return "parquet"
    if head.startswith(_IMAGE_MAGICS) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if _is_tfrecord(head) or (head[:2] == b"\x1f\x8b" and _is_tfrecord(_inflated(head))):
        return "tfrecord"
    return None


def hint(input_format: str, kinds: list[str | None]) -> str | None:
    """``these look like TFRecord files: --input_format tfrecord`` when the files a job could
    not read are all of one kind that another --input_format reads; else None."""
    found = set(kinds)
    if len(found) != 1:
        return None
    (kind,) = found
    if kind is None or FORMAT_OF[kind] == input_format:
        return None
    return f"these look like {NAMES[kind]}: --input_format {FORMAT_OF[kind]}"
