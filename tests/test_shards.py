"""Sharded inputs: the parsing functions, the shard tool, and the real job on TFRecord and
Parquet shards against the same images scored as files."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import read_json, read_jsonl
from helpers import image_bytes, write_images

from pipeline import shard
from pipeline.flags import UsageError
from pipeline.options import parse_args
from pipeline.run import run
from transforms.core import records, shard_records
from transforms.core.shard_records import parquet_layout, parquet_row
from transforms.io.tfrecord_frames import frame, masked_crc32c

STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _example(**features) -> bytes:
    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        value = value.encode() if isinstance(value, str) else value
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    named = {name.replace("__", "/"): feature(v) for name, v in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=named)).SerializeToString()


# --- pure parsing, no pipeline ---------------------------------------------------------------


def test_parse_example_key_order_and_missing_image():
    keys = shard_records.DEFAULT_KEY_FEATURES
    both = _example(image__encoded=b"img", image__filename="a.png", image__id="7")
    assert shard_records.parse_example(both, "image/encoded", keys) == ("a.png", b"img")
    assert shard_records.parse_example(
        _example(image__encoded=b"img", image__id=42), "image/encoded", keys
    ) == ("42", b"img")
    assert shard_records.parse_example(_example(image__id="x"), "image/encoded", keys) == (
        "x",
        None,
    )
    assert shard_records.parse_example(_example(image__encoded=b""), "image/encoded", keys) == (
        None,
        None,
    )
    custom = _example(jpeg=b"j", name="n")
    assert shard_records.parse_example(custom, "jpeg", ("name",)) == ("n", b"j")
    with pytest.raises(shard_records.InvalidRecord):
        shard_records.parse_example(b"\xff\xff\xff", "image/encoded", keys)


def test_parquet_layout_and_row_keys():
    struct = pa.schema([("image", STRUCT), ("id", pa.int64())])
    layout = parquet_layout(struct, "image", None)
    assert layout.columns(keys_only=False) == ["image", "id"]
    assert layout.columns(keys_only=True) == ["image.path", "id"]
    row = {"image": {"bytes": b"b", "path": "p.png"}, "id": 3}
    assert parquet_row(layout, row, "s#0") == ("p.png", b"b")
    # A null path falls back to the id, a null id to SHARD#ROW.
    assert parquet_row(layout, {"image": {"bytes": b"b", "path": None}, "id": 3}, "s#0") == (
        "3",
        b"b",
    )
    assert parquet_row(layout, {"image": None, "id": None}, "s#1") == ("s#1", None)
    # An empty path falls back to the id too; an empty id to SHARD#ROW.
    assert parquet_row(layout, {"image": {"bytes": b"b", "path": ""}, "id": 4}, "s#2") == (
        "4",
        b"b",
    )
    assert parquet_row(layout, {"image": {"bytes": b"b", "path": ""}, "id": ""}, "s#3") == (
        "s#3",
        b"b",
    )
    binary = pa.schema([("img", pa.binary()), ("name", pa.string())])
    layout = parquet_layout(binary, "img", "name")
    assert layout.columns(keys_only=True) == ["name"]
    assert parquet_row(layout, {"img": b"b", "name": "n"}, "s#0") == ("n", b"b")
    assert parquet_layout(binary, "img", None).columns(keys_only=True) == []
    # Spark writes large binary, Polars binary views: bytes all the same.
    for image_type in (pa.large_binary(), pa.binary_view()):
        schema = pa.schema([("img", image_type), ("name", pa.string_view())])
        assert parquet_layout(schema, "img", "name").columns(keys_only=False) == ["img", "name"]
    with pytest.raises(ValueError, match="holds string, not binary image bytes"):
        parquet_layout(pa.schema([("img", pa.string())]), "img", None)
    assert parquet_layout(binary, "image", None).image_column is None
    with pytest.raises(ValueError, match="not binary"):
        parquet_layout(binary, "name", None)
    with pytest.raises(ValueError, match="not a column"):
        parquet_layout(binary, "img", "missing")


def test_split_encoded_keeps_the_files_element():
    assert records.split_encoded(("gs://b/x.png", b"d")) == ("gs://b/x.png", b"d", "gs://b/x.png")
    assert records.split_encoded(("k", (b"d", "s#3"))) == ("k", b"d", "s#3")


def test_shard_keys_relative_to_the_common_folder():
    uris = ["gs://b/data/cats/1.png", "gs://b/data/dogs/2.png"]
    assert shard.shard_keys(uris, relative=False) == uris
    assert shard.shard_keys(uris, relative=True) == ["cats/1.png", "dogs/2.png"]
    assert shard.shard_keys(["/a/x.png"], relative=True) == ["x.png"]


def test_options_validate_the_input_format():
    def config(*flags):
        return parse_args(["--input", "x", "--output", "o", *flags])[1]

    assert config().input_format == "files"
    tfrecord = config("--input_format", "tfrecord", "--key_feature", "name")
    assert (tfrecord.image_feature, tfrecord.key_features) == ("image/encoded", ("name",))
    assert config("--input_format", "parquet").image_column == "image"
    with pytest.raises(UsageError, match="choose one of files, tfrecord, parquet"):
        config("--input_format", "csv")
    with pytest.raises(UsageError, match="--image_column applies to --input_format parquet"):
        config("--input_format", "tfrecord", "--image_column", "x")
    with pytest.raises(UsageError, match="--image_feature applies"):
        config("--image_feature", "x")


# --- the shard tool --------------------------------------------------------------------------


def test_shard_tool_writes_readable_shards_with_file_names_as_keys(tmp_path):
    paths = sorted(
        write_images(tmp_path / "images" / "a", 3) + write_images(tmp_path / "images" / "b", 2, 3)
    )
    pattern = f"{tmp_path}/images/**/*.png"
    argv = ["--input", pattern, "--format", "tfrecord", "--records_per_shard", "2"]
    assert shard.main([*argv, "--output", str(tmp_path / "tf"), "--compression", "gzip"]) == 0
    names = sorted(os.listdir(tmp_path / "tf"))
    assert names == [f"shard-0000{i}-of-00003.tfrecord.gz" for i in range(3)]
    # TensorFlow's own reader agrees with the framing.
    dataset = tf.data.TFRecordDataset([str(tmp_path / "tf" / n) for n in names], "GZIP")
    parsed = [tf.train.Example.FromString(r.numpy()).features.feature for r in dataset]
    assert [f["image/filename"].bytes_list.value[0].decode() for f in parsed] == paths
    with open(paths[3], "rb") as f:
        assert parsed[3]["image/encoded"].bytes_list.value[0] == f.read()

    argv = ["--input", pattern, "--format", "parquet", "--keys", "relative"]
    assert shard.main([*argv, "--output", str(tmp_path / "pq")]) == 0
    table = pq.read_table(tmp_path / "pq" / "shard-00000-of-00001.parquet")
    assert [row["path"] for row in table.column("image").to_pylist()] == [
        os.path.relpath(p, tmp_path / "images") for p in paths
    ]
    # An output that holds files is refused: the tool never overwrites.
    assert shard.main([*argv, "--output", str(tmp_path / "pq")]) == 2


@pytest.mark.parametrize("output", ["gl[1]", "g*", "gl?"])
def test_shard_tool_output_is_a_literal_folder_never_a_pattern(
    tmp_path, monkeypatch, capsys, output
):
    """The emptiness check never globs: 'gl[1]' once matched nothing and overwrote a shard
    in gl1. Glob characters are refused as the scoring job's --output refuses them."""
    write_images(tmp_path / "images", 1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gl[1]").mkdir()
    existing = tmp_path / "gl[1]" / "shard-00000-of-00001.parquet"
    existing.write_bytes(b"someone's shard")
    (tmp_path / "gl1").mkdir()
    argv = ["--input", "images/*.png", "--format", "parquet", "--output", output]
    capsys.readouterr()
    assert shard.main(argv) == 2
    assert "glob character" in capsys.readouterr().err
    assert existing.read_bytes() == b"someone's shard"
    assert os.listdir(tmp_path / "gl1") == []


def test_shard_tool_refuses_a_folder_holding_only_hidden_or_nested_files(tmp_path):
    write_images(tmp_path / "images", 1)
    argv = ["--input", f"{tmp_path}/images/*.png", "--format", "parquet", "--output"]
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "a" / "sub" / "mine.txt").write_text("x")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".hidden").write_text("x")
    for folder in ("a", "b"):
        assert shard.main([*argv, str(tmp_path / folder)]) == 2
    assert sorted(os.listdir(tmp_path / "a")) == ["sub"] and os.listdir(tmp_path / "b") == [
        ".hidden"
    ]


# --- the job on shards -----------------------------------------------------------------------


def _score(tmp_path, name, model, *flags):
    output = str(tmp_path / name)
    run(
        [
            "--model",
            model,
            "--output",
            output,
            "--deterministic",
            "--batch_size",
            "1",
            "--write_scores",
            "--reconcile_fraction",
            "0.5",
            *flags,
        ],
        save_main_session=False,
    )
    return output


def _without_uri(output):
    lines = [
        {k: v for k, v in p.items() if k != "uri"} for p in read_jsonl(f"{output}/predictions")
    ]
    return sorted(json.dumps(p, sort_keys=True) for p in lines)


@pytest.mark.slow
def test_shards_score_byte_for_byte_as_files(tmp_path, model_path):
    """Batches of one make batch ids and scores independent of arrival order, so every field
    but ``uri`` must be identical to the files run, whatever the CPU."""
    model = model_path()
    paths = sorted(write_images(tmp_path / "images", 8))
    files = _score(tmp_path, "files", model, "--input", f"{tmp_path}/images/*.png")
    expected = _without_uri(files)

    shard.write_shards([f"{tmp_path}/images/*.png"], str(tmp_path / "tf"), "tfrecord", 3, "gzip")
    shard.write_shards([f"{tmp_path}/images/*.png"], str(tmp_path / "pq"), "parquet", 5)
    # A plain binary column keyed by an ``id`` column, in two row groups.
    binary = pa.table(
        {"image": [Path(p).read_bytes() for p in paths], "id": paths},
        schema=pa.schema([("image", pa.binary()), ("id", pa.string())]),
    )
    os.makedirs(tmp_path / "bin")
    pq.write_table(binary, tmp_path / "bin" / "part.parquet", row_group_size=5)

    runs = {
        "tfrecord": ("tfrecord", f"{tmp_path}/tf/*.tfrecord.gz"),
        "parquet": ("parquet", f"{tmp_path}/pq/*.parquet"),
        "binary": ("parquet", f"{tmp_path}/bin/*.parquet"),
    }
    for name, (fmt, pattern) in runs.items():
        output = _score(tmp_path, name, model, "--input_format", fmt, "--input", pattern)
        assert _without_uri(output) == expected, name
        predictions = read_jsonl(f"{output}/predictions")
        shard_uris = {p["uri"].rsplit("#", 1)[0] for p in predictions}
        indices = sorted(int(p["uri"].rsplit("#", 1)[1]) for p in predictions)
        expected_indices = {  # 8 images in shards of 3, of 5, and in one of two row groups
            "tfrecord": ([0, 0, 0, 1, 1, 1, 2, 2], 3),
            "parquet": ([0, 0, 1, 1, 2, 2, 3, 4], 2),
            "binary": (list(range(8)), 1),
        }
        assert (indices, len(shard_uris)) == expected_indices[name]
        # Reconciliation samples by key: the same elements as the files run, keyed alike.
        elements = read_jsonl(f"{output}/reconciliation/elements")
        files_elements = read_jsonl(f"{files}/reconciliation/elements")
        assert sorted(e["key"] for e in elements) == sorted(e["key"] for e in files_elements)
        assert all("#" in e["uri"] for e in elements)
        record = read_json(f"{output}/run.json")
        assert (record["matched"], record["scored"], record["accounted"]) == (8, 8, True)


@pytest.mark.slow
def test_bad_records_are_error_records_and_the_job_is_accounted(tmp_path, model_path):
    good = [image_bytes(i) for i in range(4)]
    os.makedirs(tmp_path / "tf")
    with open(tmp_path / "tf" / "a.tfrecord", "wb") as f:
        for i, data in enumerate(good):
            f.write(frame(_example(image__encoded=data, image__filename=f"k{i}")))
        f.write(frame(_example(image__filename="no-image")))  # #4
        f.write(frame(_example(image__encoded=good[0], image__filename="k0")))
        f.write(frame(_example(image__encoded=b"not an image")))  # #6, no key
        f.write(frame(b"\x08\x96"))  # #7: not an Example
        intact = f.tell()
        f.write(frame(_example(image__encoded=good[1], image__filename="z")))
    # The last record loses its final bytes: the shard's tail is unreadable.
    with open(tmp_path / "tf" / "a.tfrecord", "r+b") as f:
        f.truncate(os.path.getsize(tmp_path / "tf" / "a.tfrecord") - 3)
    # A gzip shard cut short: the records before the cut are scored.
    with open(tmp_path / "whole.tfrecord", "wb") as f:
        for i in range(3):
            f.write(frame(_example(image__encoded=good[i], image__id=f"g{i}")))
    compressed = gzip.compress((tmp_path / "whole.tfrecord").read_bytes())
    with open(tmp_path / "tf" / "b.tfrecord.gz", "wb") as f:
        f.write(compressed[: len(compressed) * 3 // 4])

    output = _score(
        tmp_path,
        "out",
        model_path(),
        "--input_format",
        "tfrecord",
        "--input",
        f"{tmp_path}/tf/*",
    )
    errors = {(e["uri"].rsplit("/", 1)[1], e["reason"]) for e in read_jsonl(f"{output}/errors")}
    a = "a.tfrecord"
    assert {
        (f"{a}#4", "missing_image"),
        (f"{a}#5", "duplicate_key"),
        (f"{a}#6", "unsupported_format"),
        (f"{a}#7", "invalid_record"),
        (f"{a}#8", "corrupt_shard"),
    } <= errors
    corrupt = [e for e in read_jsonl(f"{output}/errors") if e["uri"].endswith(f"{a}#8")][0]
    assert f"at byte {intact}" in corrupt["message"]
    gz = sorted(uri for uri, reason in errors if uri.startswith("b.tfrecord.gz"))
    assert len(gz) == 1 and dict(errors)[gz[0]] == "corrupt_shard"
    scored = {p["key"]: p["uri"].rsplit("/", 1)[1] for p in read_jsonl(f"{output}/predictions")}
    gz_scored = int(gz[0].rsplit("#", 1)[1])
    assert 0 < gz_scored < 3  # some records before the cut, not all
    assert scored == {
        "k0": f"{a}#0",  # the first occurrence of a duplicate key is the one scored
        "k1": f"{a}#1",
        "k2": f"{a}#2",
        "k3": f"{a}#3",
        **{f"g{i}": f"b.tfrecord.gz#{i}" for i in range(gz_scored)},
    }
    record = read_json(f"{output}/run.json")
    assert record["matched"] == 9 + gz_scored + 1
    assert record["scored"] == 4 + gz_scored and record["accounted"] is True


def _frame(payload: bytes, length: int | None = None) -> bytes:
    """A TFRecord frame of ``payload`` whose header may claim another ``length``."""
    import struct

    framed = frame(payload)
    if length is None:
        return framed
    header = struct.pack("<Q", length)
    return header + struct.pack("<I", masked_crc32c(header)) + framed[12:]


@pytest.mark.slow
def test_bad_tfrecord_frames_are_short_errors_and_lengths_are_bounded(tmp_path, model_path):
    """A record failing its CRC or cut off is one corrupt_shard error naming the record and
    the byte, never quoting the record; a length header claiming 1.5 GiB (in a gzip shard of
    a few KB) is refused by --max_file_bytes before anything is allocated."""
    secret = b"SECRET-" + b"0123456789abcdef" * 1024
    bad = _frame(_example(image__encoded=secret, image__filename="k1"))
    big = _frame(_example(image__encoded=secret + b"!", image__filename="k1"))
    crc_broken = bad[:-1] + bytes([bad[-1] ^ 0xFF])  # the payload's CRC no longer matches
    tails = {
        "crc.tfrecord": crc_broken,
        "cut.tfrecord": bad[: len(bad) // 2],
        "huge.tfrecord.gz": _frame(secret, length=3 * 2**29),
        "over.tfrecord": big,  # a whole record, over the limit below
    }
    os.makedirs(tmp_path / "tf")
    shards = {}
    for i, (name, tail) in enumerate(tails.items()):
        good = _frame(_example(image__encoded=image_bytes(i), image__filename=f"k{i}"))
        shards[name] = good + tail
        data = gzip.compress(shards[name]) if name.endswith(".gz") else shards[name]
        (tmp_path / "tf" / name).write_bytes(data)
    limit = len(bad) - 16  # bad's payload exactly: allowed; big's, one byte more: refused
    output = _score(
        tmp_path,
        "out",
        model_path(),
        "--input_format",
        "tfrecord",
        "--input",
        f"{tmp_path}/tf/*",
        "--max_file_bytes",
        str(limit),
    )
    errors = {e["uri"].rsplit("/", 1)[1]: e for e in read_jsonl(f"{output}/errors")}
    assert sorted(errors) == [f"{name}#1" for name in sorted(shards)]
    payload = len(bad) - 16
    reasons = {
        "crc.tfrecord": "its payload fails its CRC",
        "cut.tfrecord": f"cut off in its payload ({len(bad) // 2 - 12:,} of {payload:,} bytes)",
        "huge.tfrecord.gz": "its length header claims 1,610,612,736 bytes, over "
        f"--max_file_bytes {limit:,}",
        "over.tfrecord": f"its length header claims {payload + 1:,} bytes, over "
        f"--max_file_bytes {limit:,}",
    }
    assert {name: e["message"] for name, e in errors.items()} == {
        f"{name}#1": f"unreadable from record 1 at byte {len(shards[name]) - len(tails[name])} "
        f"(of the decompressed stream when compressed): {reason}"
        for name, reason in reasons.items()
    }
    assert {e["reason"] for e in errors.values()} == {"corrupt_shard"}
    assert len(read_jsonl(f"{output}/predictions")) == 4  # each shard's first record
    record = read_json(f"{output}/run.json")
    assert (record["matched"], record["scored"], record["accounted"]) == (8, 4, True)


@pytest.mark.slow
def test_parquet_missing_images_and_a_broken_file(tmp_path, model_path):
    os.makedirs(tmp_path / "pq")
    rows = [{"bytes": image_bytes(i), "path": f"p{i}"} for i in range(3)]
    rows += [{"bytes": None, "path": "empty"}, None]
    pq.write_table(pa.table({"image": pa.array(rows, STRUCT)}), tmp_path / "pq" / "a.parquet")
    data = (tmp_path / "pq" / "a.parquet").read_bytes()
    with open(tmp_path / "pq" / "b.parquet", "wb") as f:
        f.write(data[: len(data) // 2])  # no footer
    # A plain binary column (as a view, the way Polars writes it) and no key column: the keys
    # are SHARD#ROW.
    plain = pa.table({"image": pa.array([image_bytes(5), image_bytes(6)], pa.binary_view())})
    pq.write_table(plain, tmp_path / "pq" / "c.parquet")
    output = _score(
        tmp_path, "out", model_path(), "--input_format", "parquet", "--input", f"{tmp_path}/pq/*"
    )
    errors = {
        (e["uri"].rsplit("/", 1)[1], e["reason"], e.get("key"))
        for e in read_jsonl(f"{output}/errors")
    }
    assert errors == {
        ("a.parquet#3", "missing_image", "empty"),
        ("a.parquet#4", "missing_image", None),
        ("b.parquet#0", "corrupt_shard", None),
    }
    keys = sorted(p["key"] for p in read_jsonl(f"{output}/predictions"))
    c = str(tmp_path / "pq" / "c.parquet")
    assert keys == sorted(["p0", "p1", "p2", f"{c}#0", f"{c}#1"])
    record = read_json(f"{output}/run.json")
    assert (record["matched"], record["scored"], record["accounted"]) == (8, 5, True)


def test_parquet_without_the_image_column_is_refused(tmp_path, model_path):
    pq.write_table(pa.table({"picture": [b"x"]}), tmp_path / "a.parquet")
    with pytest.raises(UsageError, match="--image_column 'image' is not a column"):
        run(
            [
                "--input_format",
                "parquet",
                "--input",
                str(tmp_path / "a.parquet"),
                "--model",
                model_path(),
                "--output",
                str(tmp_path / "out"),
            ],
            save_main_session=False,
        )
    assert not os.path.exists(tmp_path / "out")


def _run_quick(tmp_path, name, model, *flags):
    output = str(tmp_path / name)
    argv = ["--model", model, "--output", output, "--reconcile_fraction", "0", *flags]
    run(argv, save_main_session=False)
    return output, read_json(f"{output}/run.json")


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet"])
@pytest.mark.slow
def test_skip_existing_on_shards_scores_only_new_keys(tmp_path, model_path, fmt):
    model = model_path()
    write_images(tmp_path / "old", 6)
    shard.write_shards([f"{tmp_path}/old/*.png"], str(tmp_path / "s_old"), fmt, 4)
    source = ["--input_format", fmt, "--input", f"{tmp_path}/s_old/*"]
    first, record = _run_quick(tmp_path, "first", model, *source)
    assert (record["scored"], record["skipped"]) == (6, 0)

    _, record = _run_quick(tmp_path, "again", model, *source, "--skip_existing", first)
    assert (record["matched"], record["scored"], record["skipped"]) == (6, 0, 6)
    assert record["accounted"] and read_jsonl(f"{tmp_path}/again/predictions") == []

    # A day later: 3 new images in a new shard; every old key is skipped, without its bytes
    # leaving the reader (the join runs on keys and record locations).
    new = write_images(tmp_path / "new", 3, start=6)
    shard.write_shards([f"{tmp_path}/new/*.png"], str(tmp_path / "s_new"), fmt, 4)
    both = ["--input", f"{tmp_path}/s_new/*", "--skip_existing", first]
    more, record = _run_quick(tmp_path, "more", model, *source, *both)
    assert (record["matched"], record["scored"], record["skipped"]) == (9, 3, 6)
    assert record["errors"] == 0 and record["accounted"]
    assert sorted(p["key"] for p in read_jsonl(f"{more}/predictions")) == sorted(new)


@pytest.mark.slow
def test_skip_existing_keeps_duplicate_keys_errors_and_accounts(tmp_path, model_path):
    model = model_path()
    paths = write_images(tmp_path / "old", 3)
    shard.write_shards([f"{tmp_path}/old/*.png"], str(tmp_path / "tf"), "tfrecord", 10)
    first, _ = _run_quick(tmp_path, "first", model, "--input_format", "tfrecord", "--input",
                          f"{tmp_path}/tf/*")  # fmt: skip
    with open(tmp_path / "tf" / "z.tfrecord", "wb") as f:  # an old key again, and a new one
        f.write(frame(_example(image__encoded=image_bytes(7), image__filename=paths[0])))
        f.write(frame(_example(image__encoded=image_bytes(8), image__filename="n")))
    flags = ["--input_format", "tfrecord", "--input", f"{tmp_path}/tf/*", "--skip_existing", first]
    output, record = _run_quick(tmp_path, "again", model, *flags)
    # The 3 old keys are skipped at their first occurrence; the old key again is an error.
    counts = (record["matched"], record["scored"], record["skipped"], record["errors"])
    assert counts == (5, 1, 3, 1)
    assert record["accounted"]
    errors = read_jsonl(f"{output}/errors")
    assert [(e["key"], e["reason"]) for e in errors] == [(paths[0], "duplicate_key")]


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet"])
@pytest.mark.slow
def test_unusable_shards_are_error_records_and_nothing_hangs(tmp_path, model_path, fmt):
    """A manifest naming a missing shard, a directory or a FIFO (opening one would block
    forever), and an empty file: each is an error record naming it; the rest is scored."""
    write_images(tmp_path / "images", 3)
    shard.write_shards([f"{tmp_path}/images/*.png"], str(tmp_path / "good"), fmt, 10)
    (good,) = [str(p) for p in (tmp_path / "good").iterdir()]
    os.mkfifo(tmp_path / "pipe")
    os.makedirs(tmp_path / "folder")
    (tmp_path / "empty").write_bytes(b"")
    names = {
        "missing": "not_found",
        "folder": "not_a_regular_file",
        "pipe": "not_a_regular_file",
    }
    manifest = tmp_path / "shards.txt"
    lines = [good, *(str(tmp_path / n) for n in names), str(tmp_path / "empty")]
    manifest.write_text("".join(f"{line}\n" for line in lines))
    output, record = _run_quick(
        tmp_path, "out", model_path(), "--input_format", fmt, "--input_manifest", str(manifest)
    )
    reasons = {e["uri"].rsplit("/", 1)[1]: e["reason"] for e in read_jsonl(f"{output}/errors")}
    # An empty TFRecord file holds no records; an empty Parquet file has no footer.
    expected = names | ({"empty#0": "corrupt_shard"} if fmt == "parquet" else {})
    assert reasons == expected
    assert record["scored"] == 3 and record["matched"] == 3 + len(expected)
    assert record["accounted"]


@pytest.mark.slow
def test_every_compression_beam_detects_is_read(tmp_path, model_path):
    import bz2
    import lzma
    import zlib

    import zstandard

    compressors = {".bz2": bz2.compress, ".deflate": zlib.compress, ".xz": lzma.compress,
                   ".zst": zstandard.compress}  # fmt: skip
    os.makedirs(tmp_path / "tf")
    for n, (suffix, compress) in enumerate(compressors.items()):
        plain = tmp_path / f"plain{suffix}"
        with open(plain, "wb") as f:
            for i in range(2):
                key = f"{suffix}#{i}"
                example = _example(image__encoded=image_bytes(2 * n + i), image__filename=key)
                f.write(frame(example))
        (tmp_path / "tf" / f"s.tfrecord{suffix}").write_bytes(compress(plain.read_bytes()))
    output, record = _run_quick(
        tmp_path, "out", model_path(), "--input_format", "tfrecord", "--input", f"{tmp_path}/tf/*"
    )
    keys = sorted(p["key"] for p in read_jsonl(f"{output}/predictions"))
    assert keys == sorted(f"{suffix}#{i}" for suffix in compressors for i in range(2))
    assert (record["matched"], record["errors"], record["accounted"]) == (8, 0, True)
