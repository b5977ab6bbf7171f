"""TFRecord framing, read and written in one place: shards (``pipeline.shard`` writes them,
``transforms.score.read_shards`` reads them) and earlier runs' PredictionLog predictions
(``transforms.io.read_predictions``).

A frame is the payload's length (8 bytes, little-endian), the masked CRC32C of those 8 bytes,
the payload, and the payload's masked CRC32C: TensorFlow's format, which ``tf.io`` and Beam
read and write alike. The CRC is ``google_crc32c`` (installed with ``apache-beam[gcp]``), not
Beam's private ``_TFRecordUtil``. Reading checks both CRCs and checks the length against a
limit before a byte of the payload is read, so a corrupt length allocates nothing; no error
message quotes a record's bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import google_crc32c
from apache_beam.io.filebasedsource import FileBasedSource
from apache_beam.io.filesystem import CompressionTypes

# Length, its CRC and the payload's CRC: the bytes a frame adds to its payload.
FRAME_OVERHEAD = 16
# A payload is read this much at a time, so a length that lies about a short file allocates no
# more than the bytes really there.
_READ_CHUNK = 1024 * 1024


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """The TFRecord frame of one payload."""
    length = struct.pack("<Q", len(payload))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc32c(length)),
            payload,
            struct.pack("<I", masked_crc32c(payload)),
        )
    )


class BadFrame(ValueError):
    """A frame that cannot be read; its message is a reason, never the bytes."""


def _read_exactly(handle, size: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = handle.read(min(_READ_CHUNK, size - len(data)))
        if not chunk:
            raise BadFrame(f"cut off in its {what} ({len(data):,} of {size:,} bytes)")
        data += chunk
    return bytes(data)


def read_frame(handle, max_bytes: int, limit_name: str) -> bytes | None:
    """The next payload of a TFRecord stream, None at its end; ``limit_name`` names
    ``max_bytes`` in the message of a frame over it (e.g. ``--max_file_bytes``).

    Raises:
      BadFrame: a frame cut off, failing a CRC, or longer than ``max_bytes``.
    """
    header = handle.read(12)
    if not header:
        return None
    if len(header) < 12:
        raise BadFrame(f"cut off in its length header ({len(header)} of 12 bytes)")
    length, length_crc = struct.unpack("<QI", header)
    if length_crc != masked_crc32c(header[:8]):
        raise BadFrame("its length header fails its CRC")
    if length > max_bytes:
        raise BadFrame(
            f"its length header claims {length:,} bytes, over {limit_name} {max_bytes:,}"
        )
    payload = _read_exactly(handle, length, "payload")
    (payload_crc,) = struct.unpack("<I", _read_exactly(handle, 4, "payload CRC"))
    if payload_crc != masked_crc32c(payload):
        raise BadFrame("its payload fails its CRC")
    return payload


class CorruptFrames(ValueError):
    """The stream is unreadable from record ``index`` at byte ``offset`` (of the decompressed
    stream when compressed); the message says why (and in which file, when given), never
    quoting the bytes."""

    def __init__(self, index: int, offset: int, reason: str, file_name: str | None = None):
        where = f"{file_name}: " if file_name else ""
        super().__init__(
            f"{where}unreadable from record {index} at byte {offset} "
            f"(of the decompressed stream when compressed): {reason}"
        )
        self.index, self.offset, self.reason = index, offset, reason

    def in_file(self, file_name: str) -> CorruptFrames:
        """The same error, naming the file."""
        return CorruptFrames(self.index, self.offset, self.reason, file_name)


def iter_frames(
    handle, max_bytes: int, limit_name: str, claim: Callable[[int], bool] = lambda offset: True
) -> Iterator[tuple[int, bytes]]:
    """(index, payload) of each record (``read_frame``), while ``claim(its byte offset)``
    allows.

    Raises:
      CorruptFrames: a bad frame, CRC, gzip stream or I/O error; the reason of a bad frame is
        in words, any other by its type alone (its text is not ours to vouch for: it must not
        carry the stream's content).
    """
    index = offset = 0
    while claim(offset):
        try:
            payload = read_frame(handle, max_bytes, limit_name)
        except Exception as e:  # noqa: BLE001 - a bad frame, CRC, gzip stream or I/O
            reason = str(e) if isinstance(e, BadFrame) else type(e).__name__
            raise CorruptFrames(index, offset, reason) from None
        if payload is None:
            return
        yield index, payload
        index += 1
        offset += len(payload) + FRAME_OVERHEAD


class TFRecordSource(FileBasedSource):
    """A TFRecord file's payloads, for ``ReadAllFiles`` (unsplittable, as Beam's own TFRecord
    source): frames read by ``iter_frames``, so CRCs and lengths are checked.

    Raises (while read):
      CorruptFrames: where the file cannot be read further.
    """

    def __init__(
        self, file_name: str, max_record_bytes: int, limit_name: str, compression_type=None
    ):
        super().__init__(
            file_name,
            compression_type=compression_type or CompressionTypes.AUTO,
            splittable=False,
            validate=False,
        )
        self.max_record_bytes = max_record_bytes
        self.limit_name = limit_name

    def read_records(self, file_name, range_tracker):
        with self.open_file(file_name) as handle:
            frames = iter_frames(
                handle, self.max_record_bytes, self.limit_name, range_tracker.try_claim
            )
            try:
                for _, payload in frames:
                    yield payload
            except CorruptFrames as e:
                raise e.in_file(file_name) from None
