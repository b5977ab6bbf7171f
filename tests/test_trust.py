"""Every sentence true, every exit code meaningful: what a new user hit, on real runs."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import helpers
import pytest
from conftest import read_json, read_jsonl

from pipeline import compare, export, predict_one, shard
from pipeline.run import main as run_main
from pipeline.run import run as score
from transforms.core import sniff

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_rerun_samples_from_what_it_scores_not_from_matched(tmp_path, model_path):
    """12 images scored, 4 added: under --reconcile_min 4 the rerun compares all 4 new ones
    (the share over matched, 4 / 16, compared about one)."""
    images = tmp_path / "images"
    helpers.write_images(images, 12)
    argv = ["--input", f"{images}/*.png", "--model", model_path()]
    first = str(tmp_path / "first")
    score([*argv, "--output", first, "--reconcile_fraction", "0"], save_main_session=False)
    helpers.write_images(images, 4, start=12)
    again = str(tmp_path / "again")
    flags = ["--reconcile_fraction", "0.01", "--reconcile_min", "4", "--skip_existing", first]
    score([*argv, "--output", again, *flags], save_main_session=False)
    record = read_json(os.path.join(again, "run.json"))
    assert (record["matched"], record["skipped"], record["scored"]) == (16, 12, 4)
    summary = read_json(os.path.join(again, "reconciliation", "summary.json"))
    assert summary["compared"] == 4 and summary["exhaustive"] is True
    assert summary["effective_fraction"] == 1.0
    assert (summary["matched"], summary["skipped"], summary["predictions"]) == (16, 12, 4)
    compared = read_jsonl(os.path.join(again, "reconciliation", "elements"))
    assert sorted(os.path.basename(c["key"]) for c in compared) == [
        f"img_{i:04d}.png" for i in range(12, 16)
    ]


def _shards(tmp_path, fmt: str, *flags: str) -> str:
    images = tmp_path / "shard_images"
    helpers.write_images(images, 3)
    output = tmp_path / f"shards_{fmt}"
    argv = ["--input", f"{images}/*.png", "--output", str(output), "--format", fmt, *flags]
    assert shard.main([*argv, "--records_per_shard", "2"]) == 0
    return str(output)


def _job(tmp_path, model_path, capsys, *flags: str, name: str = "out"):
    """main() of a real job; returns (exit status, run.json, stderr)."""
    output = str(tmp_path / name)
    argv = ["--model", model_path(), "--output", output, "--reconcile_fraction", "0", *flags]
    capsys.readouterr()
    status = run_main(argv)
    err = capsys.readouterr().err
    return status, read_json(os.path.join(output, "run.json")), err


def test_tfrecord_shards_read_as_images_fail_with_the_hint(tmp_path, model_path, capsys):
    shards = _shards(tmp_path, "tfrecord")
    status, record, err = _job(tmp_path, model_path, capsys, "--input", f"{shards}/*")
    assert status == 4
    assert record["status"] == "complete" and record["accounted"]
    assert (record["matched"], record["scored"], record["errors"]) == (2, 0, 2)
    assert record["failure"] == {
        "reason": "nothing_scored",
        "message": "nothing was scored: the 2 inputs to score all became error records",
        "top_error_reasons": {"unsupported_format": 2},
        "hint": "these look like TFRecord files: --input_format tfrecord",
    }
    assert err.strip().splitlines()[-1] == (
        "batch-score: failed: nothing was scored: the 2 inputs to score all became error "
        "records (top error reasons: 2 unsupported_format); these look like TFRecord files: "
        "--input_format tfrecord"
    )


def test_gzipped_tfrecord_read_as_parquet_says_what_it_is(tmp_path, model_path, capsys):
    shards = _shards(tmp_path, "tfrecord", "--compression", "gzip")
    flags = ["--input", f"{shards}/*", "--input_format", "parquet"]
    status, record, _ = _job(tmp_path, model_path, capsys, *flags)
    assert status == 4 and record["failure"]["hint"] == (
        "these look like TFRecord files: --input_format tfrecord"
    )
    messages = {e["message"] for e in read_jsonl(os.path.join(tmp_path, "out", "errors"))}
    assert messages == {
        "not a Parquet file (no PAR1 magic number at its start and end; it looks like a "
        "TFRecord file: --input_format tfrecord)"
    }


def test_parquet_read_as_tfrecord_gets_the_parquet_hint(tmp_path, model_path, capsys):
    shards = _shards(tmp_path, "parquet")
    flags = ["--input", f"{shards}/*", "--input_format", "tfrecord"]
    status, record, _ = _job(tmp_path, model_path, capsys, *flags)
    assert status == 4
    assert record["failure"]["hint"] == "these look like Parquet files: --input_format parquet"


@pytest.mark.slow
def test_max_error_rate_fails_a_run_over_it_and_not_one_under(tmp_path, model_path, capsys):
    images = tmp_path / "images"
    helpers.write_images(images, 4)
    (images / "notes.png").write_text("not an image")
    flags = ["--input", f"{images}/*.png"]
    status, record, err = _job(tmp_path, model_path, capsys, *flags, "--max_error_rate", "0.1")
    assert status == 4 and (record["scored"], record["errors"]) == (4, 1)
    assert record["failure"]["reason"] == "max_error_rate"
    assert record["failure"]["message"] == (
        "1 errors in 5 matched inputs (20.0%) exceed --max_error_rate 0.1"
    )
    assert record["failure"]["hint"] is None and "batch-score: failed: 1 errors" in err
    status, record, _ = _job(
        tmp_path, model_path, capsys, *flags, "--max_error_rate", "0.2", name="under"
    )
    assert status == 0 and record["failure"] is None
    # Everything already scored: nothing to score is not a failure.
    again = ["--skip_existing", str(tmp_path / "under"), "--input", str(images / "img_0000.png")]
    status, record, _ = _job(tmp_path, model_path, capsys, *again, name="again")
    assert status == 0 and (record["skipped"], record["failure"]) == (1, None)


def test_the_sniffer_names_containers_not_content():
    png = helpers.image_bytes(0)
    assert sniff.kind_of(png) == "image"
    assert sniff.kind_of(b"PAR1\x15\x04", b"PAR1") == "parquet"
    assert sniff.kind_of(b"PAR1\x15\x04", b"oops") is None  # a cut-off Parquet file
    assert sniff.kind_of(b"hello world, not a container") is None
    assert sniff.hint("files", ["tfrecord", "tfrecord"]) == (
        "these look like TFRecord files: --input_format tfrecord"
    )
    assert sniff.hint("files", ["tfrecord", None]) is None  # mixed: no guess
    assert sniff.hint("tfrecord", ["tfrecord"]) is None  # the right format: a real corruption
    assert sniff.hint("parquet", ["image"]) == "these look like image files: --input_format files"


def _interrupted(run: str, complete: int) -> None:
    """Turns a finished JSONL run into what an interrupted one leaves: its sink's file under
    predictions/beam-temp-*/ holding ``complete`` records and one cut off mid-write, and the
    incomplete run.json (the layout a SIGTERM left in a real run of 1,500 images)."""
    (part,) = glob.glob(os.path.join(run, "predictions", "part-*"))
    lines = Path(part).read_text().splitlines(keepends=True)
    temp = os.path.join(run, "predictions", "beam-temp-part-" + "5" * 32)
    os.makedirs(temp)
    with open(os.path.join(temp, "0b8f1c8e-uuid.part.jsonl"), "w") as f:
        f.writelines(lines[:complete])
        f.write(lines[complete][: len(lines[complete]) // 2])
    os.remove(part)
    record = read_json(os.path.join(run, "run.json"))
    keep = ("job", "options", "model", "model_digest")
    with open(os.path.join(run, "run.json"), "w") as f:
        json.dump({**{k: record[k] for k in keep}, "status": "incomplete"}, f)


@pytest.mark.slow
def test_an_interrupted_run_is_resumed_by_skip_existing(tmp_path, model_path, capsys):
    images = tmp_path / "images"
    helpers.write_images(images, 12)
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    first = str(tmp_path / "first")
    score([*argv, "--output", first, "--batch_size", "4"], save_main_session=False)
    done = {r["key"] for r in read_jsonl(os.path.join(first, "predictions"))[:5]}
    _interrupted(first, complete=5)
    capsys.readouterr()
    rest = str(tmp_path / "rest")
    score([*argv, "--output", rest, "--skip_existing", first], save_main_session=False)
    record = read_json(os.path.join(rest, "run.json"))
    assert (record["matched"], record["skipped"], record["scored"]) == (12, 5, 7)
    assert record["accounted"] and record["status"] == "complete"
    scored_now = {r["key"] for r in read_jsonl(os.path.join(rest, "predictions"))}
    assert len(scored_now) == 7 and not scored_now & done
    note = (
        f"--skip_existing {first}: that run is incomplete (run.json), so it may not have "
        "finished; its complete prediction records are used (those in predictions/beam-temp-* "
        "too), any cut off mid-write are ignored"
    )
    assert record["skip_existing_notes"] == [note] and note in capsys.readouterr().err


@pytest.mark.slow
def test_skip_existing_and_compare_say_when_a_run_has_no_run_json(tmp_path, model_path, capsys):
    images = tmp_path / "images"
    helpers.write_images(images, 3)
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    first = str(tmp_path / "first")
    score([*argv, "--output", first], save_main_session=False)
    os.remove(os.path.join(first, "run.json"))
    capsys.readouterr()
    again = str(tmp_path / "again")
    score([*argv, "--output", again, "--skip_existing", first], save_main_session=False)
    record = read_json(os.path.join(again, "run.json"))
    assert record["skipped"] == 3 and record["skip_existing_notes"] == [
        f"--skip_existing {first}: that run has no readable run.json, so it may not have "
        "finished; its complete prediction records are used (those in predictions/beam-temp-* "
        "too), any cut off mid-write are ignored"
    ]
    capsys.readouterr()
    cmp_out = str(tmp_path / "cmp")
    assert compare.main(["--baseline", first, "--candidate", first, "--output", cmp_out]) == 0
    err = capsys.readouterr().err
    assert f"--baseline {first}: that run has no readable run.json" in err
    assert f"--candidate {first}: that run has no readable run.json" in err


_REFUSE = """\
import runpy, sys
sys.argv = [sys.argv[0], *sys.argv[2:]]
try:
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
except SystemExit as e:
    print("EXIT", e.code, "tensorflow" in sys.modules, "apache_beam" in sys.modules)
"""


@pytest.mark.parametrize(
    ("module", "argv", "line"),
    [
        ("pipeline.run", ["--input", "x/*.png", "--output", "o", "--batch-size", "8"],
         "batch-score: error: unknown flag --batch-size; did you mean --batch_size?"),
        ("pipeline.run", ["--input", "x/*.png", "--output", "o", "--runer", "DirectRunner"],
         "batch-score: error: unknown flag --runer; did you mean --runner?"),
        ("pipeline.run", ["--input", "x/*.png"],
         "batch-score: error: no output: pass --output DIRECTORY"),
        ("pipeline.run", ["--input", "x/*.png", "--output", "FULL"],
         "batch-score: error: --output 'FULL' is not empty; pass --overwrite to replace a "
         "previous run's outputs there, or choose a new directory"),
        ("pipeline.run", ["--input", "x/*.png", "--output", "o", "--batch_size", "0"],
         "batch-score: error: --batch_size 0: must be at least 1"),
        ("pipeline.compare", ["--baseline", "a", "--candidate", "b", "--output", "o", "--atl"],
         "batch-compare: error: unknown flag --atl; did you mean --atol?"),
        ("pipeline.shard", ["--input", "x", "--output", "o", "--format", "tfrecord", "--keys"],
         "shard: error: argument --keys: expected one argument"),
        ("pipeline.predict_one", ["img.png", "--modle", "m"],
         "predict_one: error: unknown flag --modle; did you mean --model?"),
    ],
    ids=["misspelt", "beam-misspelt", "no-output", "existing-output", "bad-value", "compare",
         "shard", "predict_one"],
)  # fmt: skip
def test_a_bad_command_line_is_refused_before_tensorflow_or_beam_is_imported(
    tmp_path, module, argv, line
):
    full = tmp_path / "FULL"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", _REFUSE.format(module=module), module, *argv]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.stderr.strip().splitlines() == [line]
    # Exit 2, neither TensorFlow nor Beam imported (JobConfig's value checks need neither).
    assert done.stdout.split() == ["EXIT", "2", "False", "False"]


def test_the_beam_flag_snapshot_is_the_installed_beams():
    from pipeline.beam_flags import BEAM_FLAGS
    from pipeline.options import beam_flag_names

    assert beam_flag_names() == BEAM_FLAGS


def test_labels_file_labels_a_plain_model_and_a_wrong_count_is_refused(
    tmp_path, model_path, capsys
):
    images = tmp_path / "images"
    helpers.write_images(images, 3)
    names = [f"class-{i}" for i in range(helpers.NUM_CLASSES)]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(names) + "\n")
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    out = str(tmp_path / "out")
    score([*argv, "--output", out, "--labels_file", str(labels)], save_main_session=False)
    predictions = read_jsonl(os.path.join(out, "predictions"))
    assert {p["top_k"][0]["label"] for p in predictions} <= set(names)
    assert all(t["label"] == names[t["index"]] for p in predictions for t in p["top_k"])
    labels.write_text("cat\ndog\n")
    refused = str(tmp_path / "refused")
    capsys.readouterr()
    assert run_main([*argv, "--output", refused, "--labels_file", str(labels)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"batch-score: error: --labels_file {str(labels)!r} has 2 labels for the model's "
        f"{helpers.NUM_CLASSES} classes; give one label a line, in class order"
    ]
    assert not os.path.exists(refused)


def test_beams_labels_flag_on_a_local_runner_gets_a_note(tmp_path, model_path, capsys):
    images = tmp_path / "images"
    helpers.write_images(images, 2)
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    capsys.readouterr()
    score([*argv, "--output", str(tmp_path / "o"), "--labels", "team=ml"], save_main_session=False)
    assert (
        "note: --labels is Beam's Dataflow job-labels flag (key=value), which DirectRunner "
        "ignores; a plain model's class names go in --labels_file FILE (one label a line)"
    ) in capsys.readouterr().err


@pytest.mark.slow
def test_predict_one_names_both_models_when_they_differ_and_a_missing_image_in_one_line(
    tmp_path, model_path, models_dir, capsys
):
    images = tmp_path / "images"
    (image, *_) = helpers.write_images(images, 2)
    bundle = str(tmp_path / "bundle")
    assert export.main(["--model", model_path(), "--output", bundle]) == 0
    other = helpers.save_model(str(models_dir / "other_predict"), "clean", seed=3)
    run = str(tmp_path / "run")
    flags = ["--reconcile_fraction", "0", "--write_scores"]
    score(["--input", f"{images}/*.png", "--model", other, "--output", run, *flags])
    digest = read_json(os.path.join(run, "run.json"))["model_digest"]
    capsys.readouterr()
    assert predict_one.main([image, "--model", bundle, "--against", run]) == 0
    printed = capsys.readouterr().out.splitlines()
    (note,) = [line for line in printed if "note:" in line]
    assert note.startswith(f"  note: the models differ: --model {bundle} has digest ")
    assert note.endswith(
        f"the batch prediction's model {digest}; the difference above is between two models, "
        "not a skew of one"
    )
    assert predict_one.main([str(images / "missing.jpg"), "--model", bundle]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"predict_one: error: cannot read {images / 'missing.jpg'}: no such file (not_found)"
    ]


@pytest.mark.slow
def test_shard_and_compare_on_tfrecord_print_no_tensorflow_start_up_lines(tmp_path, model_path):
    images = tmp_path / "images"
    helpers.write_images(images, 2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it

    def python(*argv):
        done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    shards = str(tmp_path / "shards")
    made = python("-m", "pipeline.shard", "--input", f"{images}/*.png", "--output", shards,
                  "--format", "tfrecord")  # fmt: skip
    assert made.stderr == "" and made.stdout == f"wrote 1 shard(s) to {shards}/\n"
    run = str(tmp_path / "run")
    flags = ["--reconcile_fraction", "0", "--output_format", "tfrecord"]
    score(["--input", f"{images}/*.png", "--model", model_path(), "--output", run, *flags])
    compared = python("-m", "pipeline.compare", "--baseline", run, "--candidate", run,
                      "--output", str(tmp_path / "cmp"))  # fmt: skip
    assert compared.stderr == ""
