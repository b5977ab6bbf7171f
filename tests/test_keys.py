"""How inputs are keyed: one absolute key per local file, whatever the spelling and the working
directory, on every surface that forms or looks up keys (the job's readers, the shard tool,
``--skip_existing``, ``predict_one --against``)."""

from __future__ import annotations

import os

import pytest
from conftest import read_json, read_jsonl
from helpers import write_images

from pipeline import predict_one, shard
from pipeline.run import run
from transforms.core.common import normalize_uri, parse_manifest_line


def _run(output, model, *flags) -> dict:
    argv = ["--model", model, "--output", str(output), "--reconcile_fraction", "0", *flags]
    run(argv, save_main_session=False)
    return read_json(f"{output}/run.json")


@pytest.mark.parametrize(
    "uri, key",
    [
        ("x/a.png", "/w/x/a.png"),
        ("./x//a.png", "/w/x/a.png"),
        ("file:///w/x/a.png", "/w/x/a.png"),
        ("file://x/a.png", "/w/x/a.png"),
        ("/w/y/../x/a.png", "/w/x/a.png"),
        ("../a.png", "/a.png"),
        ("gs://bucket/a//b.png", "gs://bucket/a//b.png"),  # distinct objects on GCS
    ],
)
def test_every_spelling_of_a_local_file_is_one_absolute_key(uri, key):
    assert normalize_uri(uri, "/w") == key
    assert parse_manifest_line(uri.encode() + b"\n", "/w") == key


def test_dot_dot_goes_up_from_where_a_symbolic_link_points(tmp_path):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    # As the kernel reads it: link/.. is real/, not tmp_path.
    assert normalize_uri(f"{tmp_path}/link/../a.png") == f"{tmp_path}/real/a.png"


@pytest.mark.slow
def test_a_run_from_another_directory_skips_only_the_same_files(tmp_path, model_path, monkeypatch):
    model = model_path()
    for project in ("one", "two"):
        write_images(tmp_path / project / "imgs", 3, start=0 if project == "one" else 10)
    monkeypatch.chdir(tmp_path / "one")
    first = _run(tmp_path / "first", model, "--input", "imgs/*.png")
    assert first["working_dir"] == str(tmp_path / "one")
    keys = sorted(p["key"] for p in read_jsonl(tmp_path / "first" / "predictions"))
    assert keys == [f"{tmp_path}/one/imgs/img_{i:04d}.png" for i in range(3)]

    # Same relative names, other files: nothing may be skipped.
    monkeypatch.chdir(tmp_path / "two")
    other = _run(tmp_path / "other", model, "--input", "imgs/*.png", "--skip_existing", "../first")
    assert (other["scored"], other["skipped"]) == (3, 0)
    # The same files named from here: every one is skipped.
    same = _run(
        tmp_path / "same",
        model,
        "--input",
        "../one/imgs/*.png",
        "--skip_existing",
        f"{tmp_path}/first",
    )
    assert (same["scored"], same["skipped"]) == (0, 3)

    # predict_one --against finds a file by any spelling, and never another file of that name.
    record = predict_one.find_batch_prediction(str(tmp_path / "first"), "../one/imgs/img_0001.png")
    assert record["key"] == f"{tmp_path}/one/imgs/img_0001.png"
    assert predict_one.find_batch_prediction(str(tmp_path / "first"), "imgs/img_0001.png") is None


@pytest.mark.slow
def test_shards_and_files_key_a_file_alike_and_count_each_file_once(
    tmp_path, model_path, monkeypatch
):
    model = model_path()
    paths = write_images(tmp_path / "x", 3)
    monkeypatch.chdir(tmp_path)
    # The shard tool keys './x/...' as the job keys 'x/...': by the absolute path.
    shard.write_shards(["./x/*.png"], str(tmp_path / "s"), "tfrecord", 2)
    files = _run(tmp_path / "files", model, "--input", "x/*.png")
    shards = _run(tmp_path / "shards", model, "--input_format", "tfrecord", "--input", "s/*")
    for output in ("files", "shards"):
        keys = sorted(p["key"] for p in read_jsonl(tmp_path / output / "predictions"))
        assert keys == paths
    assert (files["matched"], shards["matched"]) == (3, 3)

    # One file under five spellings, a line repeated, and a glob over the same files: 3 inputs.
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(
        f"x/img_0000.png\n./x//img_0000.png\nfile://{paths[0]}\n{paths[0]}\n"
        f"{tmp_path}/y/../x/img_0000.png\nx/img_0001.png\nx/img_0001.png\n"
    )
    (tmp_path / "y").mkdir()
    spelled = _run(
        tmp_path / "spelled", model, "--input_manifest", "manifest.txt", "--input", "./x/*.png"
    )
    assert (spelled["matched"], spelled["scored"], spelled["errors"]) == (3, 3, 0)
    assert sorted(p["key"] for p in read_jsonl(tmp_path / "spelled" / "predictions")) == paths

    # A shard listed twice (two spellings) is read once.
    (tmp_path / "shards.txt").write_text(
        "s/shard-00000-of-00002.tfrecord\n./s/shard-00000-of-00002.tfrecord\n"
    )
    twice = _run(
        tmp_path / "twice", model, "--input_format", "tfrecord", "--input_manifest", "shards.txt"
    )
    assert (twice["matched"], twice["scored"], twice["errors"]) == (2, 2, 0)


@pytest.mark.slow
def test_an_earlier_run_with_relative_keys_is_named_and_scored_again(
    tmp_path, model_path, monkeypatch, capsys
):
    """Runs before keys were absolute keyed local files as spelled: their relative keys match
    no key of a later job, which says so and scores the images again (never a wrong skip)."""
    import json

    model = model_path()
    write_images(tmp_path / "imgs", 2)
    monkeypatch.chdir(tmp_path)
    _run(tmp_path / "old", model, "--input", "imgs/*.png")
    (part,) = (tmp_path / "old" / "predictions").iterdir()
    rows = [json.loads(line) for line in part.read_text().splitlines()]
    for row in rows:  # as an earlier version wrote them
        row["key"] = row["uri"] = os.path.relpath(row["key"], tmp_path)
    part.write_text("".join(json.dumps(row) + "\n" for row in rows))
    capsys.readouterr()
    again = _run(tmp_path / "again", model, "--input", "imgs/*.png", "--skip_existing", "old")
    assert (again["scored"], again["skipped"]) == (2, 0)
    assert "its keys are relative paths" in capsys.readouterr().err
    assert "relative paths" in again["skip_existing_notes"][0]
