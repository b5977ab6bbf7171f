"""MatchInputs, the one front end of both readers: a dangling symbolic link and a manifest line
that is not UTF-8 are accounted for alike whether the inputs are image files or shards."""

from __future__ import annotations

import os

import pytest
from apache_beam.io.filesystems import FileSystems
from conftest import read_json, read_jsonl
from helpers import write_images

from pipeline import shard
from pipeline.run import run
from transforms.io.match_inputs import manifest_names, match_pattern, uri_of

# A manifest line that is not UTF-8, naming nothing, and one naming a real file or shard.
MISSING = b"\xff-missing"
RAW = b"\xfe-raw"


def test_a_dangling_link_is_matched_where_beams_listing_drops_it(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    os.symlink(tmp_path / "gone", tmp_path / "dangling.png")

    beams = sorted(m.path for m in FileSystems.match([f"{tmp_path}/*.png"])[0].metadata_list)
    ours = sorted(match_pattern(f"{tmp_path}/*.png", str(tmp_path)))

    assert beams == [f"{tmp_path}/a.png"]
    assert ours == [f"{tmp_path}/a.png".encode(), f"{tmp_path}/dangling.png".encode()]


def test_a_manifest_line_that_is_not_utf8_is_the_raw_name_it_spells():
    (name,) = manifest_names(b"rel/" + MISSING + b".png\r\n", "/w")
    assert name == b"/w/rel/" + MISSING + b".png"
    assert uri_of(name) == "/w/rel/\\xff-missing.png"
    assert manifest_names(b"  # a comment\n", "/w") == manifest_names(b"\n", "/w") == []


def _job(tmp_path, flags: list[str]):
    output = str(tmp_path / "out")
    argv = ["--output", output, "--reconcile_fraction", "0", *flags]
    run(argv, save_main_session=False)
    errors = {
        (e["uri"].rsplit("/", 1)[1], e["stage"], e["reason"])
        for e in read_jsonl(f"{output}/errors")
    }
    return read_json(f"{output}/run.json"), errors


def _manifest(tmp_path, *lines: bytes) -> str:
    path = tmp_path / "manifest.txt"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def test_files_mode_accounts_for_dangling_links_and_non_utf8_manifest_lines(tmp_path, model_path):
    write_images(tmp_path / "images", 2)
    os.symlink(tmp_path / "gone.png", tmp_path / "images" / "dangling.png")
    (raw,) = write_images(tmp_path / "elsewhere", 1, start=2)
    raw_name = os.fsencode(tmp_path / "elsewhere") + b"/" + RAW + b".png"
    os.rename(raw, raw_name)
    manifest = _manifest(tmp_path, os.fsencode(tmp_path) + b"/" + MISSING + b".png", raw_name)

    flags = ["--model", model_path(), "--input", f"{tmp_path}/images/*"]
    record, errors = _job(tmp_path, [*flags, "--input_manifest", manifest])

    assert errors == {
        ("dangling.png", "read", "broken_symlink"),
        ("\\xff-missing.png", "read", "not_found"),
    }
    assert (record["matched"], record["scored"], record["errors"]) == (5, 3, 2)
    assert record["accounted"] is True


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet"])
@pytest.mark.slow
def test_shard_mode_accounts_for_dangling_links_and_non_utf8_manifest_lines(
    tmp_path, model_path, fmt
):
    write_images(tmp_path / "images", 2)
    shard.write_shards([f"{tmp_path}/images/*.png"], str(tmp_path / "shards"), fmt, 10)
    os.symlink(tmp_path / "gone", tmp_path / "shards" / "dangling")
    write_images(tmp_path / "more", 1, start=2)
    (written,) = shard.write_shards([f"{tmp_path}/more/*.png"], str(tmp_path / "raw"), fmt, 10)
    raw_name = os.fsencode(tmp_path / "raw") + b"/" + RAW
    os.rename(written, raw_name)
    manifest = _manifest(tmp_path, os.fsencode(tmp_path) + b"/" + MISSING, raw_name)

    flags = ["--model", model_path(), "--input_format", fmt, "--input", f"{tmp_path}/shards/*"]
    record, errors = _job(tmp_path, [*flags, "--input_manifest", manifest])

    assert errors == {
        ("dangling", "read", "broken_symlink"),
        ("\\xff-missing", "read", "not_found"),
    }
    assert (record["matched"], record["scored"], record["errors"]) == (5, 3, 2)
    assert record["accounted"] is True
    output = str(tmp_path / "out")
    uris = sorted(p["uri"].rsplit("/", 1)[1] for p in read_jsonl(f"{output}/predictions"))
    assert "\\xfe-raw#0" in uris
