"""TFRecord framing in its one home (transforms.io.tfrecord_frames): the bytes TensorFlow
writes and reads, checked CRCs and bounded lengths, and earlier runs' PredictionLog
predictions read through it (their CRCs checked too, where they once were skipped)."""

from __future__ import annotations

import gzip
import io
import struct

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from transforms.core import prediction_formats
from transforms.io import read_predictions
from transforms.io.tfrecord_frames import (
    CorruptFrames,
    TFRecordSource,
    frame,
    iter_frames,
    masked_crc32c,
)

IDS = {"batch_id": "b0", "model_digest": "d0", "uri": "u"}
PAYLOADS = [b"", b"a", b"\x00" * 1000, bytes(range(256)) * 5]


def test_frames_are_the_bytes_tensorflow_writes_and_reads(tmp_path):
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for payload in PAYLOADS:
            writer.write(payload)
    with open(path, "rb") as f:
        assert f.read() == b"".join(map(frame, PAYLOADS))
    ours = tmp_path / "ours.tfrecord"
    ours.write_bytes(b"".join(map(frame, PAYLOADS)))
    read_back = [r.numpy() for r in tf.data.TFRecordDataset(str(ours))]
    assert read_back == PAYLOADS
    # CRC32C's check value (0xE3069283 for "123456789"), masked as TFRecord masks it.
    check = 0xE3069283
    assert masked_crc32c(b"123456789") == (((check >> 15) | (check << 17)) + 0xA282EAD8) % 2**32


def _frames(data: bytes, limit: int = 1 << 20):
    return list(iter_frames(io.BytesIO(data), limit, "--max_file_bytes"))


def test_each_corruption_is_named_with_record_and_byte_never_the_bytes():
    good = frame(b"secret-1") + frame(b"secret-2")
    assert _frames(good) == [(0, b"secret-1"), (1, b"secret-2")]
    second = len(frame(b"secret-1"))
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    cases = {
        "its payload fails its CRC": flipped,
        "cut off in its payload CRC (2 of 4 bytes)": good[:-2],
        "cut off in its length header (5 of 12 bytes)": good[: second + 5],
        "its length header fails its CRC": good[:second] + b"\x09" + good[second + 1 :],
    }
    for reason, data in cases.items():
        with pytest.raises(CorruptFrames) as raised:
            _frames(data)
        assert (raised.value.index, raised.value.offset, raised.value.reason) == (1, second, reason)
        assert "secret" not in str(raised.value)


def test_a_length_over_the_limit_is_refused_before_its_payload_is_read():
    header = struct.pack("<Q", 3 << 30)
    lying = header + struct.pack("<I", masked_crc32c(header)) + b"tiny"
    with pytest.raises(CorruptFrames) as raised:
        _frames(lying, limit=1000)
    assert raised.value.reason == (
        "its length header claims 3,221,225,472 bytes, over --max_file_bytes 1,000"
    )


def _prediction_run(tmp_path, corrupt: bool) -> str:
    """A run directory holding one gzipped PredictionLog shard of two records."""
    records = [
        {"key": f"k{i}", "scores": [0.25, 0.75], "batch_size": 2, "position": i, **IDS}
        for i in range(2)
    ]
    logs = [prediction_formats.to_prediction_log(r) for r in records]
    data = b"".join(map(frame, logs))
    if corrupt:  # one payload byte of the second record flipped: only its CRC can tell
        at = len(frame(logs[0])) + 12 + len(logs[1]) // 2
        data = data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]
    (tmp_path / "run" / "predictions").mkdir(parents=True)
    shard = tmp_path / "run" / "predictions" / "part-00000-of-00001.tfrecord.gz"
    shard.write_bytes(gzip.compress(data))
    return str(tmp_path / "run")


def test_earlier_runs_predictionlogs_are_read_with_their_crcs_checked(tmp_path):
    good = _prediction_run(tmp_path / "good", corrupt=False)
    assert [r["key"] for r in read_predictions.run_records(good)] == ["k0", "k1"]
    with beam.Pipeline() as p:
        read = p | read_predictions.ReadPredictions(good)
        keys = read.records | beam.Map(lambda r: r["key"])
        assert_that(keys, equal_to(["k0", "k1"]))

    bad = _prediction_run(tmp_path / "bad", corrupt=True)
    with pytest.raises(CorruptFrames, match="unreadable from record 1 .*fails its CRC"):
        list(read_predictions.run_records(bad))
    with pytest.raises(Exception, match="fails its CRC"), beam.Pipeline() as p:
        _ = p | read_predictions.ReadPredictions(bad)


def test_the_source_reads_compression_by_extension(tmp_path):
    path = tmp_path / "x.tfrecord.gz"
    path.write_bytes(gzip.compress(b"".join(map(frame, PAYLOADS))))
    source = TFRecordSource(str(path), 1 << 20, "--max_file_bytes")
    assert list(source.read(source.get_range_tracker(None, None))) == PAYLOADS
