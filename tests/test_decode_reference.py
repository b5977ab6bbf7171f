"""``--decode_reference pillow`` and EXIF orientation: TensorFlow's decoder ignores the
orientation tag, Pillow's decode (with ``ImageOps.exif_transpose``) applies it, and the job
counts, compares and diagnoses the difference."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest import read_json, read_jsonl
from helpers import IMAGE_SIZE, NUM_CLASSES, image_bytes
from PIL import Image

from pipeline.flags import UsageError
from pipeline.run import run
from transforms.score.pillow_reference import decode_with_pillow

ROTATE_90_CW = 6  # EXIF orientation: the stored image is shown turned 90 degrees clockwise


def _rotated_jpeg(seed: int) -> bytes:
    image = Image.open(io.BytesIO(image_bytes(seed, size=(24, 20))))
    exif = Image.Exif()
    exif[0x0112] = ROTATE_90_CW
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def layout_model(tmp_path_factory):
    """A model whose scores depend on where each pixel is (Flatten, Dense): a rotation moves
    them all, so it changes the scores."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((*IMAGE_SIZE, 3))
    x = keras.layers.Dense(NUM_CLASSES)(keras.layers.Flatten()(inputs))
    net = keras.Model(inputs, keras.layers.Softmax()(x))
    path = str(tmp_path_factory.mktemp("layout") / "layout.keras")
    net.save(path)
    return path


def test_pillow_decode_applies_the_exif_orientation():
    data = _rotated_jpeg(1)
    with Image.open(io.BytesIO(data)) as stored:
        as_stored = np.asarray(stored.convert("RGB"))
    decoded = decode_with_pillow(data)
    assert as_stored.shape == (24, 20, 3) and decoded.shape == (20, 24, 3)
    np.testing.assert_array_equal(decoded, np.rot90(as_stored, k=-1))


@pytest.mark.slow
def test_decode_reference_counts_compares_and_diagnoses_exif_rotation(tmp_path, layout_model):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        (images / f"plain_{i}.png").write_bytes(image_bytes(i))
    (images / "rotated.jpg").write_bytes(_rotated_jpeg(9))
    output = tmp_path / "out"
    run(
        [
            "--input",
            f"{images}/*",
            "--model",
            layout_model,
            "--output",
            str(output),
            "--batch_size",
            "1",
            "--reconcile_fraction",
            "1",
            "--decode_reference",
            "pillow",
        ],
        save_main_session=False,
    )
    record = read_json(output / "run.json")
    assert (record["scored"], record["exif_oriented"]) == (5, 1)
    assert record["options"]["decode_reference"] == "pillow"

    elements = read_jsonl(output / "reconciliation" / "elements")
    pillow = {os.path.basename(e["key"]): e for e in elements if e["reference"] == "pillow"}
    assert sorted(pillow) == [
        "plain_0.png",
        "plain_1.png",
        "plain_2.png",
        "plain_3.png",
        "rotated.jpg",
    ]
    # PNG decodes alike in both, through the same model call: bit for bit the single reference.
    for name in ("plain_0.png", "plain_1.png", "plain_2.png", "plain_3.png"):
        assert (pillow[name]["status"], pillow[name]["exif_orientation"]) == ("identical", 1)
        assert pillow[name]["input_max_abs_diff"] == 0.0
    rotated = pillow["rotated.jpg"]
    assert (rotated["status"], rotated["exif_orientation"]) == ("mismatch", ROTATE_90_CW)
    assert rotated["input_max_abs_diff"] > 0.1
    assert all(e["status"] == "identical" for e in elements if e["reference"] == "single")

    summary = read_json(output / "reconciliation" / "summary.json")
    assert summary["exif_oriented"] == 1
    counts = summary["by_reference"]["pillow"]
    assert (counts["compared"], counts["identical"], counts["mismatch"]) == (5, 4, 1)
    assert summary["by_reference"]["single"]["mismatch"] == 0
    (skew,) = [d for d in summary["diagnosis"] if d["cause"] == "decoder_skew"]
    assert "1 of 5 elements disagree with the same bytes decoded by Pillow" in skew["evidence"]
    assert "1 predictions are of images with an EXIF orientation" in skew["evidence"]
    html = (output / "reconciliation" / "report.html").read_text(encoding="utf-8")
    assert "Decoder skew (Pillow decode)" in html and "EXIF orientation other than" in html


def test_decode_reference_needs_a_sample(tmp_path, layout_model):
    from pipeline.options import parse_args

    argv = ["--input", "x/*.png", "--output", str(tmp_path / "o"), "--model", layout_model]
    with pytest.raises(UsageError, match="--decode_reference compares the sample"):
        parse_args([*argv, "--reconcile_fraction", "0", "--decode_reference", "pillow"])
    with pytest.raises(UsageError, match="invalid choice: 'opencv'"):
        parse_args([*argv, "--decode_reference", "opencv"])
