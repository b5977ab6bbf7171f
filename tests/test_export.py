"""export and predict_one on any Beam filesystem: ``mem://`` (Beam's in-memory filesystem)
stands in for ``gs://`` (tests/memfs.py)."""

from __future__ import annotations

import json
import os

import memfs  # noqa: F401 - registers the mem:// filesystem
import numpy as np
import pytest
from apache_beam.io.filesystems import FileSystems
from helpers import image_bytes

from pipeline import export, predict_one
from transforms.core.model_reading import load_image_model


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def _relative_files(root: str) -> set[str]:
    found = FileSystems.match([root.rstrip("/") + "/**"])[0].metadata_list
    return {m.path[len(root) :].lstrip("/") for m in found}


@pytest.mark.slow
def test_export_to_a_remote_filesystem_writes_the_same_bundle(tmp_path, model_path, capsys):
    remote_root = f"mem://export-{tmp_path.name}"
    labels = f"{remote_root}/labels.txt"
    _write(labels, b"cat\ndog\nfox\nowl\n")
    remote, local = f"{remote_root}/bundle", str(tmp_path / "bundle")
    for output in (remote, local):
        assert export.main(["--model", model_path(), "--output", output, "--labels", labels]) == 0

    local_files = {
        os.path.relpath(os.path.join(d, n), local) for d, _, names in os.walk(local) for n in names
    }
    assert _relative_files(remote) == local_files
    assert {"saved_model.pb", "assets/preprocessing.json", "assets/labels.txt"} <= local_files
    # The copy loads (through the job's own remote-model path) and scores as the local one.
    from_remote, from_local = load_image_model(remote), load_image_model(local)
    assert from_remote.kind == "bundle" and from_remote.labels == ["cat", "dog", "fox", "owl"]
    batch = np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32)
    np.testing.assert_array_equal(from_remote.score(batch), from_local.score(batch))

    # A non-empty remote output is refused, with nothing changed.
    capsys.readouterr()
    assert export.main(["--model", model_path(), "--output", remote]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert _relative_files(remote) == local_files


def test_predict_one_finds_the_batch_prediction_on_a_remote_output(tmp_path):
    output = f"mem://predict-one-{tmp_path.name}/run"
    records = [
        {"key": u, "uri": u, "top_k": [], "batch_id": str(i)}
        for i, u in ((i, f"gs://bucket/images/{i}.png") for i in (1, 2))
    ]
    _write(
        f"{output}/predictions/part-00000-of-00001.jsonl",
        "".join(json.dumps(r) + "\n" for r in records).encode(),
    )
    found = predict_one.find_batch_prediction(output, "gs://bucket/images/2.png")
    assert found["batch_id"] == "2"
    assert predict_one.find_batch_prediction(output, "gs://bucket/images/3.png") is None


@pytest.mark.slow
def test_predict_one_reads_a_remote_image(tmp_path, model_path, capsys):
    bundle = str(tmp_path / "bundle")
    assert export.main(["--model", model_path(), "--output", bundle]) == 0
    image = f"mem://predict-one-{tmp_path.name}/image.png"
    _write(image, image_bytes(7))
    capsys.readouterr()
    assert predict_one.main([image, "--model", bundle, "--top_k", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{image}: online (serving_default via tfx-bsl), top 2:"
    assert len(printed) == 3
