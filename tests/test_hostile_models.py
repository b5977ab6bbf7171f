"""Odd models and hostile resources: a clear line or a record, never a raw traceback.

Each case runs the real command line in-process (``pipeline.run.main``) on tiny generated
SavedModels (``helpers.save_signature_model``) and a few generated images.
"""

from __future__ import annotations

import helpers
import pytest
from conftest import read_json, read_jsonl

from pipeline.run import main


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile_images")
    helpers.write_images(directory, 12)
    return f"{directory}/*.png"


def _run(images, model, output, *flags):
    return main(["--input", images, "--model", model, "--output", str(output), *flags])


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("batch-score: error: ")
    return lines[0]


def test_a_model_that_refuses_the_start_up_probe_is_a_model_warning(
    images, signature_model, tmp_path, capsys
):
    output = tmp_path / "out"
    status = _run(images, signature_model("refuses_zeros"), output, "--reconcile_fraction", "1")

    err = capsys.readouterr().err
    assert status == 0
    assert "warning:" in err and "InvalidArgumentError" in err and "Traceback" not in err
    summary = read_json(output / "reconciliation" / "summary.json")
    assert [w["kind"] for w in summary["model_warnings"]] == ["model_call_failed"]
    assert read_json(output / "run.json")["scored"] == 12


def test_an_image_the_model_fails_on_alone_is_a_reference_error_not_the_jobs_end(
    images, signature_model, tmp_path, capsys
):
    # Batches of 4 score; every rescoring alone (and any batch of one) raises.
    output = tmp_path / "out"
    flags = ("--batch_size", "4", "--reconcile_fraction", "1")
    status = _run(images, signature_model("refuses_batch_of_one"), output, *flags)

    assert status == 0
    run = read_json(output / "run.json")
    assert run["status"] == "complete" and run["accounted"]
    predictions = read_jsonl(output / "predictions")
    assert len(predictions) == run["scored"] > 0
    elements = read_jsonl(output / "reconciliation" / "elements")
    job = [e for e in elements if not e.get("sweep")]
    assert len(job) == run["scored"]
    assert {e["status"] for e in job} == {"reference_error"}
    assert all("InvalidArgumentError" in e["error"] for e in job)
    summary = read_json(output / "reconciliation" / "summary.json")
    assert summary["reference_error"] == summary["compared"] == run["scored"]
    assert summary["verdict"] == "fail"
    assert "whose reference failed" in summary["guarantee"]
    assert [c["cause"] for c in summary["diagnosis"]] == ["reference_failed"]


def test_a_swept_batch_the_model_fails_on_is_that_sweeps_reference_error(
    images, signature_model, tmp_path
):
    # Padded, the reference is a padded batch of 4 (which scores); the sweep at 1 raises.
    output = tmp_path / "out"
    flags = ("--batch_size", "4", "--pad_batches", "--reconcile_fraction", "1")
    status = _run(
        images, signature_model("refuses_batch_of_one"), output, *flags, "--sweep_batch_sizes", "1"
    )

    assert status == 0
    elements = read_jsonl(output / "reconciliation" / "elements")
    job = [e["status"] for e in elements if not e.get("sweep")]
    swept = [e["status"] for e in elements if e.get("sweep")]
    assert len(job) == len(swept) == 12
    assert "reference_error" not in job
    assert set(swept) == {"reference_error"}
    summary = read_json(output / "reconciliation" / "summary.json")
    assert summary["sweep"]["1"]["reference_error"] == 12
    assert summary["reference_error"] == 0
