"""Odd models and hostile resources: a clear line or a record, never a raw traceback.

Each case runs the real command line in-process (``pipeline.run.main``) on tiny generated
SavedModels (``helpers.save_signature_model``) and a few generated images.
"""

from __future__ import annotations

import helpers
import pytest
from conftest import read_json

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
