"""Value checks of the pure modules' smaller functions, written from mutation testing's survivors.

Records, the preprocessing spec and dtypes, the histogram and the output directory's refusals:
each test pins exact values, so a one-token change to the code fails at least one of them. No
pipeline: these are in the mutation run's test selection (pyproject.toml, [tool.mutmut]).
"""

from __future__ import annotations

import hashlib
import json
import os

import memfs  # noqa: F401 - registers the mem:// filesystem
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from pipeline import outputs
from pipeline.flags import UsageError
from transforms.core import records
from transforms.core.preprocess import PreprocessSpec, normalize, to_model_dtype
from transforms.core.tolerance import LogHistogram

# --- records ------------------------------------------------------------------------------------


def test_error_detail_is_the_first_line_without_tensorflows_prefix():
    error = ValueError("{{function_node __inference_f_12}} Invalid JPEG data\n\t [[node X]]")
    assert records.error_detail(error) == "Invalid JPEG data"
    assert records.error_detail(ValueError("  padded\nsecond")) == "padded"
    assert records.error_detail(KeyError()) == "KeyError"
    assert records.error_detail(RuntimeError("  ")) == "RuntimeError"
    # Only a leading prefix goes; braces elsewhere are the message's own.
    assert records.error_detail(ValueError("bad {{function_node f}}")) == "bad {{function_node f}}"


def test_image_error_record_names_its_key_only_when_it_is_not_the_uri():
    error = records.ImageError("read", records.NOT_FOUND, "no such file")
    assert (error.stage, error.reason, error.message, str(error)) == (
        "read",
        "not_found",
        "no such file",
        "no such file",
    )
    file_record = {
        "uri": "a.png",
        "stage": "read",
        "reason": "not_found",
        "message": "no such file",
    }
    assert error.record("a.png") == file_record
    assert error.record("a.png", key="a.png") == file_record
    assert error.record("s.tfrecord#3", key="cat") == {
        "uri": "s.tfrecord#3",
        "stage": "read",
        "reason": "not_found",
        "message": "no such file",
        "key": "cat",
    }


def test_batch_ids_are_stable_hex_digests_of_the_ordered_keys():
    batch = records.batch_id_for(["a", "b"])
    assert batch == hashlib.blake2b(b"a\nb", digest_size=8).hexdigest()
    assert batch == records.batch_id_for(["a", "b"])
    assert len(batch) == 16 and int(batch, 16) >= 0
    # The digest of the keys joined by newlines, in order: no two batches share an id.
    assert batch != records.batch_id_for(["b", "a"])
    assert batch != records.batch_id_for(["ab"])
    assert batch != records.batch_id_for(["a\nb", ""])


def test_records_default_their_key_to_the_uri():
    tensor = np.zeros((1, 1, 3), np.float32)
    assert records.Preprocessed("u", tensor).key == "u"
    assert records.Preprocessed("u", tensor, key="k").key == "k"
    assert records.Scored("u", None, 1, "b", 0).key == "u"
    assert records.Scored("u", None, 1, "b", 0, key="k").key == "k"


def test_stable_fraction_is_the_keys_blake2b_as_a_share_of_2_to_the_64():
    digest = hashlib.blake2b(b"gs://b/x.png", digest_size=8).digest()
    assert records.stable_fraction("gs://b/x.png") == int.from_bytes(digest, "big") / 2.0**64
    values = [records.stable_fraction(f"k{i}") for i in range(2000)]
    assert 0.0 <= min(values) < 0.01 and 0.99 < max(values) < 1.0
    assert records.stable_fraction("é") == records.stable_fraction("é")


def test_is_sampled_at_the_edges():
    keys = [f"k{i}" for i in range(500)]
    assert all(records.is_sampled(k, 1.0) for k in keys)
    assert not any(records.is_sampled(k, 0.0) for k in keys)
    for k in keys[:50]:
        share = records.stable_fraction(k)
        assert records.is_sampled(k, share + 1e-12) and not records.is_sampled(k, share)


def test_effective_fraction_edges():
    assert records.effective_fraction(0.0, 300, 10) == 0.0
    assert records.effective_fraction(-1.0, 300, 10) == 0.0
    assert records.effective_fraction(0.01, 300, 0) == 1.0
    assert records.effective_fraction(0.01, 300, 30_000) == 0.01
    assert records.effective_fraction(0.01, 300, 20_000) == 300 / 20_000
    assert records.effective_fraction(0.5, 300, 100) == 1.0
    assert records.effective_fraction(0.5, 0, 100) == 0.5
    assert records.effective_fraction(0.25, 0, 1) == 0.25  # one input: the fraction still rules


def test_top_k_order_ties_labels_and_prediction_record():
    scores = np.array([0.1, 0.4, 0.4, 0.05], np.float32)
    assert records.top_k(scores, 3, ["a", "b", "c", "d"]) == [
        {"index": 1, "label": "b", "score": pytest.approx(0.4)},
        {"index": 2, "label": "c", "score": pytest.approx(0.4)},
        {"index": 0, "label": "a", "score": pytest.approx(0.1)},
    ]
    # Labels missing or too short: the index, as a string.
    assert [e["label"] for e in records.top_k(scores, 4, None)] == ["1", "2", "0", "3"]
    assert [e["label"] for e in records.top_k(scores, 4, ["a", "b"])] == ["b", "2", "a", "3"]
    assert records.label_for(-1, ["a"]) == "-1"
    assert records.label_for(0, []) == "0"

    scored = records.Scored("u.png", scores, 8, "id", 3, key="k")
    record = records.prediction_record(scored, 2, None, "sha256:x", write_scores=True)
    assert record == {
        "key": "k",
        "uri": "u.png",
        "top_k": records.top_k(scores, 2, None),
        "batch_size": 8,
        "batch_id": "id",
        "position": 3,
        "model_digest": "sha256:x",
        "scores": [float(v) for v in scores],
    }
    assert "scores" not in records.prediction_record(scored, 2, None, "d", write_scores=False)

    nan = records.Scored("n.png", np.array([np.nan, 1.0, np.inf], np.float32), 8, "id", 0)
    record = records.prediction_record(nan, 2, None, "d", write_scores=True)
    assert record["top_k"] == [] and record["non_finite"] is True
    assert record["scores"] == [None, 1.0, None]
    assert "non_finite" not in records.prediction_record(scored, 2, None, "d", False)


# --- preprocessing spec, normalisation and model dtypes ------------------------------------------


def test_spec_json_is_sorted_keys_and_exact():
    spec = PreprocessSpec((24, 32), "unit", "nearest", False)
    assert spec.to_json() == (
        '{"antialias": false, "image_size": [24, 32], "normalization": "unit", '
        '"resize_method": "nearest"}'
    )
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    assert PreprocessSpec(("5", 7.0)).image_size == (5, 7)


@pytest.mark.parametrize("size", [(0, 4), (4, 0), (-1, 4)])
def test_spec_refuses_non_positive_sizes_naming_them(size):
    with pytest.raises(ValueError, match=f"image size must be positive, got {size[0]}x{size[1]}"):
        PreprocessSpec(size)


def test_spec_errors_list_the_choices():
    with pytest.raises(ValueError, match=r"unknown normalization 'x'; choose one of symmetric, "):
        PreprocessSpec((4, 4), "x")
    with pytest.raises(ValueError, match=r"unknown resize method 'x'; choose one of .*bilinear"):
        PreprocessSpec((4, 4), resize_method="x")
    assert PreprocessSpec((4, 4)) == PreprocessSpec((4, 4), "symmetric", "bilinear", True)


@pytest.mark.parametrize(
    "normalization, pixel, expected",
    [
        ("symmetric", (0.0, 127.5, 255.0), (-1.0, 0.0, 1.0)),
        ("unit", (0.0, 51.0, 255.0), (0.0, 0.2, 1.0)),
        ("none", (0.0, 51.0, 255.0), (0.0, 51.0, 255.0)),
        # Channels reversed to BGR, then the BGR means subtracted.
        ("caffe", (10.0, 20.0, 30.0), (30 - 103.939, 20 - 116.779, 10 - 123.68)),
        (
            "imagenet",
            (0.485 * 255, 0.456 * 255, 0.406 * 255 + 0.225 * 255),
            (0.0, 0.0, 1.0),
        ),
    ],
)
def test_normalisations_map_pixels_to_their_documented_values(normalization, pixel, expected):
    image = tf.constant([[list(pixel)]], tf.float32)
    out = normalize(image, normalization).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6, atol=1e-6)


def test_normalize_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="unknown normalization 'x'"):
        normalize(tf.zeros([1, 1, 3]), "x")


def test_model_dtypes_round_integers_and_keep_float32():
    images = tf.constant([0.4, 0.5, 1.5, 254.9999, 255.0], tf.float32)
    for dtype in ("uint8", "int32", "int64"):
        out = to_model_dtype(images, dtype)
        assert out.dtype == tf.as_dtype(dtype)
        # Rounded half to even, never truncated: 254.9999 stays 255.
        assert out.numpy().tolist() == [0, 0, 2, 255, 255]
    assert to_model_dtype(images, "float32") is images
    half = to_model_dtype(images, "float16")
    assert half.dtype == tf.float16 and half.numpy()[4] == 255.0


# --- histogram ----------------------------------------------------------------------------------


def test_histogram_bins_edges_and_quantiles():
    assert LogHistogram.NUM_BINS == 62 and LogHistogram.empty() == [0] * 62
    assert LogHistogram.bin_of(0.0) == LogHistogram.bin_of(-1.0) == 0
    assert LogHistogram.bin_of(float("inf")) == LogHistogram.bin_of(float("nan")) == 61
    assert LogHistogram.bin_of(1e-12) == 1 and LogHistogram.bin_of(1e-13) == 1
    assert LogHistogram.bin_of(1.01e-12) == 2
    assert LogHistogram.bin_of(1.0) == 49 and LogHistogram.bin_of(1e3) == 61
    assert LogHistogram.bin_of(1e9) == 61
    assert LogHistogram.upper_edge(0) == 0.0
    assert LogHistogram.upper_edge(1) == 1e-12
    assert LogHistogram.upper_edge(49) == pytest.approx(1.0)
    assert LogHistogram.upper_edge(50) == pytest.approx(10**0.25)
    for value in (3e-9, 0.02, 7.0):
        index = LogHistogram.bin_of(value)
        assert LogHistogram.upper_edge(index - 1) < value <= LogHistogram.upper_edge(index)

    counts = LogHistogram.empty()
    for value in (0.0, 0.0, 1e-6, 1e-3):
        LogHistogram.add(counts, value)
    assert counts[0] == 2 and sum(counts) == 4
    assert LogHistogram.quantile(counts, 0.5, 1e-3) == 0.0
    assert LogHistogram.quantile(counts, 0.75, 1e-3) == pytest.approx(1e-6)
    assert LogHistogram.quantile(counts, 1.0, 5e-4) == 5e-4  # capped at the observed maximum
    assert LogHistogram.quantile(LogHistogram.empty(), 0.5, 1.0) is None
    other = LogHistogram.empty()
    other[3] = 5
    merged = LogHistogram.merge(counts, other)
    assert merged[3] == 5 and sum(merged) == 9 and merged[0] == 2
    with pytest.raises(ValueError):
        LogHistogram.merge(counts, [0])


# --- the output directory's refusals -----------------------------------------------------------


def test_check_output_accepts_a_new_or_empty_directory(tmp_path):
    outputs.check_output(str(tmp_path / "new" / "deeper"), overwrite=False)
    outputs.check_output(str(tmp_path), overwrite=False)
    assert os.listdir(tmp_path) == []  # nothing is written by checking


def _refusal(output, overwrite=True, previous=None) -> str:
    with pytest.raises(UsageError) as refused:
        outputs.check_output(str(output), overwrite=overwrite, previous=previous)
    return str(refused.value)


def test_check_output_refusals_say_which_and_how_to_fix_it(tmp_path):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert _refusal(a_file) == f"--output {str(a_file)!r} is a file; pass a directory"
    assert _refusal(a_file / "out", overwrite=False) == (
        f"--output {str(a_file / 'out')!r} cannot be created: {a_file} is a file, not a "
        "directory; choose another path"
    )

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _refusal(out, overwrite=False) == (
        f"--output {str(out)!r} is not empty; pass --overwrite to replace a previous run's "
        "outputs there, or choose a new directory"
    )
    assert _refusal(out) == (
        f"--output {str(out)!r} is not empty and holds no previous run of this job (no run.json "
        "of ours); --overwrite replaces only a previous run: choose a new directory"
    )
    assert _refusal(out, previous=lambda _: None) == (
        f"--output {str(out)!r} is not empty and holds no previous run of this job; "
        "--overwrite replaces only a previous run: choose a new directory"
    )
    outputs.check_output(str(out), overwrite=True, previous=lambda _: {})

    (out / "run.json").write_text(json.dumps({"job": outputs.JOB, "status": "complete"}))
    outputs.check_output(str(out), overwrite=True)
    (out / "predictions").write_text("a file")
    assert _refusal(out) == (
        f"--output {str(out)!r}: predictions is a file where the job writes a directory; "
        "choose a new directory"
    )
    os.remove(out / "predictions")
    (out / "reconciliation").mkdir()
    os.symlink(tmp_path, out / "reconciliation" / "elements")
    assert _refusal(out) == (
        f"--output {str(out)!r}: reconciliation/elements is a symbolic link; the job writes "
        "only into a directory of its own: remove the link or choose a new directory"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_refuses_a_read_only_parent(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UsageError, match=r"is not writable \(no write permission on "):
            outputs.check_output(str(locked / "out"), overwrite=False)
    finally:
        locked.chmod(0o700)


def test_our_file_names_and_json_round_trip(tmp_path):
    for name in (
        "run.json",
        "predictions/part-00000-of-00002.jsonl",
        "errors/part-00001-of-00002.jsonl",
        "reconciliation/elements/part-00000-of-00001.jsonl",
        "predictions/part-00000-of-00001.parquet",
        "predictions/part-00000-of-00001.tfrecord.gz",
        "reconciliation/summary.json",
        "reconciliation/report.html",
        "reconciliation/.thumbnails.json",
        "reconciliation/..thumbnails.json.tmp-" + "c" * 32,
        "reconciliation/.summary.json.tmp-" + "a" * 32,
        ".run.json.tmp-" + "0" * 32,
        "counts.json",
        ".counts.json.tmp-" + "b" * 32,
        "predictions/beam-temp-part-" + "f" * 32 + "/x",
    ):
        assert outputs.is_our_file(name), name
    for name in (
        "notes.txt",
        "predictions/x.jsonl",
        "summary.json",
        "run.json.bak",
        "a/run.json",
        "errors/counts.json",
        "counts.json.bak",
        ".thumbnails.json",
    ):
        assert not outputs.is_our_file(name), name

    path = str(tmp_path / "r.json")
    outputs.write_json(path, {"b": 1, "a": [1.5, None]})
    # Sorted keys, indented by two, one final newline: stable diffs between runs.
    assert (tmp_path / "r.json").read_text() == (
        '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'
    )
    assert outputs.read_json(path) == {"b": 1, "a": [1.5, None]}
    assert json.loads((tmp_path / "r.json").read_text()) == {"b": 1, "a": [1.5, None]}


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")


def test_previous_run_recognises_ours_and_older_records_only(tmp_path):
    assert outputs.previous_run(str(tmp_path)) is None
    run_json = tmp_path / "run.json"
    older = {"matched": 1, "accounted": True, "options": {}}
    run_json.write_text(json.dumps(older))
    assert outputs.previous_run(str(tmp_path)) == older  # written before the "job" field
    for key in older:
        partial = {k: v for k, v in older.items() if k != key}
        run_json.write_text(json.dumps(partial))
        assert outputs.previous_run(str(tmp_path)) is None, key
    run_json.write_text(json.dumps({"job": "another-tool", "matched": 1}))
    assert outputs.previous_run(str(tmp_path)) is None
    run_json.unlink()
    run_json.mkdir()
    assert outputs.previous_run(str(tmp_path)) is None
    run_json.rmdir()
    (tmp_path / "real.json").write_text(json.dumps({"job": outputs.JOB}))
    os.symlink(tmp_path / "real.json", run_json)
    assert outputs.previous_run(str(tmp_path)) is None  # a link is never ours


def test_previous_run_reads_at_most_64_mib(tmp_path):
    ours = json.dumps({"job": outputs.JOB}).encode()
    limit = outputs._MAX_RUN_JSON_BYTES
    with open(tmp_path / "run.json", "wb") as f:
        f.write(ours + b" " * (limit - len(ours)))
    assert outputs.previous_run(str(tmp_path)) == {"job": outputs.JOB}
    with open(tmp_path / "run.json", "ab") as f:
        f.write(b" ")
    assert outputs.previous_run(str(tmp_path)) is None


def test_files_under_stays_out_of_links_and_lists_the_jobs_folders(tmp_path):
    _touch(tmp_path, "notes.txt", "errors/part-00000-of-00001.jsonl", "reconciliation/summary.json")
    _touch(tmp_path, "elsewhere/part-00000-of-00001.jsonl", "other/deep/x.txt")
    os.symlink(tmp_path / "elsewhere", tmp_path / "predictions")
    assert sorted(outputs._files_under(str(tmp_path))) == [
        "errors/part-00000-of-00001.jsonl",
        "notes.txt",
        "reconciliation/summary.json",
    ]
    assert outputs._files_under(str(tmp_path / "missing")) == []


def test_files_to_replace_listed_leftovers_and_unfinished_runs(tmp_path):
    tmp = "reconciliation/.summary.json.tmp-" + "a" * 32
    beam = "predictions/beam-temp-part-" + "b" * 32 + "/shard"
    _touch(tmp_path, "notes.txt", "predictions/part-00000-of-00002.jsonl")
    _touch(tmp_path, "predictions/part-00001-of-00002.jsonl", "run.json", tmp, beam)
    listed = {"outputs": ["predictions/part-00000-of-00002.jsonl"]}
    assert outputs.files_to_replace(str(tmp_path), listed) == sorted(
        [tmp, beam, "predictions/part-00000-of-00002.jsonl", "run.json"]
    )
    # A run that never finished listed nothing: every file of our names goes.
    assert outputs.files_to_replace(str(tmp_path), {"status": "incomplete"}) == sorted(
        [tmp, beam, "predictions/part-00000-of-00002.jsonl"]
        + ["predictions/part-00001-of-00002.jsonl", "run.json"]
    )


def test_prepare_output_removes_emptied_folders_and_beam_temporaries(tmp_path):
    beam = "predictions/beam-temp-part-" + "b" * 32 + "/shard"
    _touch(tmp_path, beam, "reconciliation/elements/part-00000-of-00001.jsonl")
    _touch(tmp_path, "errors/part-00000-of-00001.jsonl", "errors/mine.txt")
    (tmp_path / "run.json").write_text(json.dumps({"job": outputs.JOB, "status": "incomplete"}))
    outputs.prepare_output(str(tmp_path), overwrite=False)
    assert (tmp_path / "run.json").exists()
    outputs.prepare_output(str(tmp_path), overwrite=True)
    # Only the user's file, the folder holding it and the new incomplete run.json remain.
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["errors", "mine.txt", "run.json"]


def test_written_and_our_files_compare_with_the_snapshot(tmp_path):
    _touch(tmp_path, "notes.txt", "predictions/part-00000-of-00001.jsonl", "run.json")
    _touch(tmp_path, "reconciliation/summary.json")
    before = outputs.our_files(str(tmp_path))
    assert before == {
        "predictions/part-00000-of-00001.jsonl",
        "run.json",
        "reconciliation/summary.json",
    }
    _touch(tmp_path, "reconciliation/report.html")
    before_report = outputs.our_files(str(tmp_path))
    _touch(tmp_path, "errors/part-00000-of-00001.jsonl")
    # A report there before the run is rewritten by it, so it is this run's too.
    assert "reconciliation/report.html" in outputs.written_files(str(tmp_path), before_report)
    _touch(tmp_path, ".run.json.tmp-" + "c" * 32, "errors/beam-temp-part-" + "d" * 32 + "/s")
    assert outputs.written_files(str(tmp_path), before) == [
        "errors/part-00000-of-00001.jsonl",
        "reconciliation/report.html",
        "reconciliation/summary.json",  # rewritten by every run, so always this run's
    ]
    assert outputs.written_files(str(tmp_path)) == [
        "errors/part-00000-of-00001.jsonl",
        "predictions/part-00000-of-00001.jsonl",
        "reconciliation/report.html",
        "reconciliation/summary.json",
    ]


def test_a_remote_output_is_listed_checked_and_cleared_through_filesystems():
    output = "mem://bucket/run-a"
    for name in ("run.json", "predictions/part-00000-of-00001.jsonl", "notes.txt"):
        with FileSystems.create(f"{output}/{name}") as f:
            f.write(json.dumps({"job": outputs.JOB}).encode())
    assert sorted(outputs._files_under(output)) == [
        "notes.txt",
        "predictions/part-00000-of-00001.jsonl",
        "run.json",
    ]
    assert outputs._files_under(output + "/") == outputs._files_under(output)
    with pytest.raises(UsageError, match="is not empty; pass --overwrite"):
        outputs.check_output(output, overwrite=False)
    outputs.check_output(output, overwrite=True)
    outputs.prepare_output(output, overwrite=True)
    assert sorted(outputs._files_under(output)) == ["notes.txt", "run.json"]
    assert outputs.read_json(f"{output}/run.json")["status"] == "incomplete"
    outputs.check_output("mem://bucket/empty", overwrite=False)


# --- shard records --------------------------------------------------------------------------------


def _example(**features) -> bytes:
    def feature(value):
        value = value.encode() if isinstance(value, str) else value
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    named = {name: feature(v) for name, v in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=named)).SerializeToString()


def test_shard_keys_as_text_empty_keys_skipped_and_parse_errors_named():
    from transforms.core import shard_records

    # Bytes keys are UTF-8 text; bytes that are not UTF-8 keep their escapes, never fail.
    assert shard_records.parse_example(_example(k=b"caf\xc3\xa9", i=b"x"), "i", ("k",)) == (
        "café",
        b"x",
    )
    assert shard_records.parse_example(_example(k=b"a\xffb", i=b"x"), "i", ("k",)) == (
        "a\\xffb",
        b"x",
    )
    # An empty key falls through to the next feature.
    assert shard_records.parse_example(_example(k=b"", j=b"n", i=b"x"), "i", ("k", "j")) == (
        "n",
        b"x",
    )
    with pytest.raises(shard_records.InvalidRecord, match="^not a serialized tf.train.Example: "):
        shard_records.parse_example(b"\xff\xff\xff", "i", ("k",))


def test_parquet_struct_paths_keys_and_refusals():
    import pyarrow as pa

    from transforms.core.shard_records import parquet_layout, parquet_row

    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("image", struct), ("name", pa.string())])
    # A --key_column wins over the struct's path.
    layout = parquet_layout(schema, "image", "name")
    assert (layout.image_field, layout.path_field, layout.key_column) == ("bytes", None, "name")
    row = {"image": {"bytes": b"b", "path": "p.png"}, "name": "n"}
    assert parquet_row(layout, row, "s#0") == ("n", b"b")
    no_path = pa.schema([("image", pa.struct([("bytes", pa.binary())]))])
    assert parquet_layout(no_path, "image", None).path_field is None
    path_only = parquet_layout(pa.schema([("image", struct)]), "image", None)
    assert path_only.path_field == "path"
    assert parquet_row(path_only, {"image": {"bytes": b"b", "path": ""}}, "s#4") == ("s#4", b"b")
    assert parquet_row(path_only, {"image": {"bytes": b"", "path": "p"}}, "s#4") == ("p", None)
    binary_key = parquet_layout(pa.schema([("img", pa.binary()), ("k", pa.binary())]), "img", "k")
    assert parquet_row(binary_key, {"img": b"i", "k": b""}, "s#5") == ("s#5", b"i")
    assert parquet_row(binary_key, {"img": b"i", "k": b"kk"}, "s#5") == ("kk", b"i")
    missing = parquet_layout(pa.schema([("k", pa.string())]), "img", "k")
    assert parquet_row(missing, {"k": "x", None: b"never read"}, "s#6") == ("x", None)
    with pytest.raises(ValueError, match=r"^--image_column 'image' is a struct without a 'bytes'"):
        parquet_layout(pa.schema([("image", pa.struct([("path", pa.string())]))]), "image", None)


def test_top_k_keeps_index_order_among_many_ties():
    """More than 16 tied scores: numpy's default sort is not stable there; ties go by index."""
    scores = np.full(40, 0.025, np.float32)
    scores[[7, 31]] = 0.05
    assert [e["index"] for e in records.top_k(scores, 6, None)] == [7, 31, 0, 1, 2, 3]


def test_the_sample_share_is_of_what_the_job_scores():
    assert records.sample_share(0.01, 300, None) == 0.01  # no count: the fraction itself
    assert records.sample_share(0.01, 300, 20_000) == 0.015
    assert records.sample_share(0.01, 300, 20_030, skipped=20_000) == 1.0  # a 30-image rerun
    assert records.sample_share(0.0, 300, 100) == 0.0


def test_probe_candidates_are_chosen_by_key_hash_whatever_the_order():
    from transforms.core import probe_choice

    keys = [f"gs://b/img_{i}.jpg" for i in range(200)]
    first = min(keys, key=probe_choice.probe_order)
    tensor = np.zeros((2, 2, 3), np.float32)

    def candidate(key):
        return probe_choice.ProbeCandidate(probe_choice.MISMATCH, key, tensor, tensor[0, 0], 8, 0)

    for order in (keys, keys[::-1], sorted(keys, key=probe_choice.probe_order)):
        chosen: dict = {}
        offered = probe_choice.FirstSoFar()
        for key in order:
            if offered.offer(probe_choice.MISMATCH, key):
                probe_choice.keep_first(chosen, candidate(key))
        assert chosen[probe_choice.MISMATCH].key == first
    # A bundle offers only the running firsts: few of many.
    offered = probe_choice.FirstSoFar()
    assert sum(offered.offer(probe_choice.FIRST, key) for key in keys) == 7
    assert not offered.offer(probe_choice.FIRST, first)  # the same key again: not before itself
