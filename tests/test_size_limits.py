"""The size guards at their boundaries: a file of exactly --max_file_bytes is read and one byte
more is ``file_too_large``; an image of exactly --max_image_pixels decodes and one pixel more is
``too_many_pixels``. Through the real reading and decoding functions, the shard tool, and one
real job."""

from __future__ import annotations

import os

import helpers
import memfs  # noqa: F401 - registers the mem:// filesystem
import pytest
from apache_beam.io.filesystems import FileSystems
from conftest import read_jsonl

from transforms.core import records
from transforms.core.preprocess import PreprocessSpec
from transforms.score.preprocess_images import ImagePreprocessor
from transforms.score.read_files import read_file

LIMIT = 2000  # bytes: above every small PNG below, so padding decides the size
PIXELS = 64  # 8 x 8 is exactly the limit; 13 x 5 is one pixel over


def _png_of_size(size: int, seed: int = 0) -> bytes:
    """A valid 4x4 PNG padded after its IEND chunk to exactly ``size`` bytes (decoders stop at
    IEND, so the padding changes the file's size and nothing else)."""
    png = helpers.image_bytes(seed, size=(4, 4))
    assert len(png) < size
    return png + b"\0" * (size - len(png))


def _refusal(call) -> tuple[str, str]:
    with pytest.raises(records.ImageError) as refused:
        call()
    return refused.value.stage, refused.value.reason


def test_a_local_file_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path):
    exact, over = tmp_path / "exact.png", tmp_path / "over.png"
    exact.write_bytes(_png_of_size(LIMIT))
    over.write_bytes(_png_of_size(LIMIT + 1))
    assert read_file(str(exact), LIMIT) == exact.read_bytes()
    assert _refusal(lambda: read_file(str(over), LIMIT)) == ("read", records.FILE_TOO_LARGE)
    assert read_file(str(over), LIMIT + 1) == over.read_bytes()


def test_a_remote_object_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path):
    bucket = f"mem://size-limits-{tmp_path.name}"
    data = {"exact": _png_of_size(LIMIT), "over": _png_of_size(LIMIT + 1)}
    for name, content in data.items():
        with FileSystems.create(f"{bucket}/{name}.png") as f:
            f.write(content)
    assert read_file(f"{bucket}/exact.png", LIMIT) == data["exact"]
    refused = _refusal(lambda: read_file(f"{bucket}/over.png", LIMIT))
    assert refused == ("read", records.FILE_TOO_LARGE)


def test_an_image_of_exactly_the_pixel_limit_decodes_and_one_pixel_more_does_not():
    spec = PreprocessSpec((16, 16))
    exact = helpers.image_bytes(1, size=(8, 8))  # (height, width): 64 pixels
    over = helpers.image_bytes(2, size=(5, 13))  # 65 pixels
    tensor, orientation = ImagePreprocessor(spec, PIXELS).decode(exact)
    assert (tensor.shape, orientation) == ((16, 16, 3), 1)
    refused = _refusal(lambda: ImagePreprocessor(spec, PIXELS).decode(over))
    assert refused == ("decode", records.TOO_MANY_PIXELS)
    assert ImagePreprocessor(spec, PIXELS + 1).decode(over)[0].shape == (16, 16, 3)


def test_the_shard_tool_packs_a_file_of_exactly_the_limit_and_refuses_one_byte_more(
    tmp_path, capsys
):
    from pipeline import shard

    (tmp_path / "exact").mkdir()
    (tmp_path / "exact" / "a.png").write_bytes(_png_of_size(LIMIT))
    (tmp_path / "over").mkdir()
    (tmp_path / "over" / "a.png").write_bytes(_png_of_size(LIMIT + 1))
    for name, status in (("exact", 0), ("over", 2)):
        argv = ["--input", f"{tmp_path}/{name}/*.png", "--output", str(tmp_path / f"{name}_out")]
        assert shard.main([*argv, "--format", "parquet", "--max_file_bytes", str(LIMIT)]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"its size {LIMIT + 1:,} bytes is over --max_file_bytes" in err[0]
    assert len(os.listdir(tmp_path / "exact_out")) == 1


@pytest.mark.slow
def test_the_job_scores_inputs_at_both_limits_and_refuses_one_over(tmp_path, model_path):
    from pipeline.run import run

    images = tmp_path / "images"
    images.mkdir()
    files = {
        "bytes_exact.png": _png_of_size(LIMIT, seed=3),
        "bytes_over.png": _png_of_size(LIMIT + 1, seed=4),
        "pixels_exact.png": helpers.image_bytes(5, size=(8, 8)),
        "pixels_over.png": helpers.image_bytes(6, size=(5, 13)),
    }
    for name, content in files.items():
        (images / name).write_bytes(content)
    output = tmp_path / "out"
    run(
        ["--input", f"{images}/*.png", "--model", model_path(), "--output", str(output)]
        + ["--max_file_bytes", str(LIMIT), "--max_image_pixels", str(PIXELS)]
        + ["--reconcile_fraction", "0"],
        save_main_session=False,
    )
    scored = sorted(os.path.basename(p["uri"]) for p in read_jsonl(output / "predictions"))
    errors = {
        os.path.basename(e["uri"]): (e["stage"], e["reason"]) for e in read_jsonl(output / "errors")
    }
    assert scored == ["bytes_exact.png", "pixels_exact.png"]
    assert errors == {
        "bytes_over.png": ("read", records.FILE_TOO_LARGE),
        "pixels_over.png": ("decode", records.TOO_MANY_PIXELS),
    }
