"""run.json's counts come from the job's own data (counts.json), never from the runner's metrics:
true on a runner that reports none, and never "accounted" when the counts are missing or do not
add up."""

from __future__ import annotations

import json
import os
import shutil

import helpers
import pytest
from conftest import read_json, read_jsonl

from pipeline.options import parse_args
from pipeline.run import run
from pipeline.run_record import run_record
from pipeline.run_summary import print_run_summary
from transforms.score.run_counts import COUNTS_JSON, read_counts

NUM_IMAGES = 20
NO_METRICS = ("--runner", "helpers.NoMetricsDirectRunner")


def _score(pattern: str, model: str, output, *flags) -> dict:
    argv = ["--input", pattern, "--model", model, "--output", str(output), "--batch_size", "8"]
    sample = ("--reconcile_fraction", "1", "--sweep_batch_sizes", "1,4")
    run([*argv, *sample, *flags], save_main_session=False)
    return read_json(os.path.join(output, "run.json"))


@pytest.mark.slow
def test_a_runner_without_metrics_gets_the_true_counts(tmp_path, model_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    helpers.write_images("images", NUM_IMAGES)
    with open("images/bad.png", "wb") as f:
        f.write(b"not an image at all")
    pattern = "images/*.png"
    # The DirectRunner first, on a copy of the model no earlier test loaded in this process
    # (the process's shared model is counted once): model_loads comes from its metrics.
    model = shutil.copy(model_path(), tmp_path)
    direct = _score(pattern, model, "direct")
    assert direct["model_loads"] == 1

    record = _score(pattern, model, "out", *NO_METRICS)
    assert record["runner"] == "helpers.NoMetricsDirectRunner"
    assert (record["matched"], record["scored"], record["errors"]) == (NUM_IMAGES + 1, 20, 1)
    assert record["errors_by_reason"] == {"unsupported_format": 1}
    assert (record["skipped"], record["non_finite_scores"]) == (0, 0)
    # Every scored element against itself alone; the sweep's comparisons are not counted.
    assert record["reconciled"] == 20
    assert len(read_jsonl("out/reconciliation/elements")) == 20 * 3
    assert record["accounted"] is True
    # A metric, not data: where the runner reports none, it is unknown, not 0.
    assert record["model_loads"] is None
    assert COUNTS_JSON in record["outputs"]
    for field in ("matched", "scored", "errors", "errors_by_reason", "reconciled", "skipped"):
        assert (field, direct[field]) == (field, record[field])

    # --skip_existing on the runner without metrics: skipped elements are counted too.
    again = _score(pattern, model, "again", *NO_METRICS, "--skip_existing", "out")
    assert (again["matched"], again["scored"], again["errors"]) == (NUM_IMAGES + 1, 0, 1)
    assert (again["skipped"], again["accounted"]) == (NUM_IMAGES, True)
    assert again["skip_existing_unreadable_lines"] == 0


def _config_and_options(tmp_path):
    return parse_args(["--input", "x/*.png", "--model", "m.keras", "--output", str(tmp_path)])


def _counts(**overrides) -> dict:
    counts = {
        "matched": 10,
        "scored": 7,
        "errors": 2,
        "errors_by_reason": {"corrupt_image": 2},
        "skipped": 1,
        "non_finite_scores": 0,
        "reconciled": 3,
        "skip_existing_unreadable_lines": 0,
        "exif_oriented": 0,
        "run_id": "r",
    }
    return counts | overrides


def _record(tmp_path, counts):
    options, config = _config_and_options(tmp_path)
    return run_record(config, options, None, counts, 2.0)


def test_run_record_is_accounted_only_when_the_counts_add_up(tmp_path):
    record = _record(tmp_path, _counts())
    assert record["accounted"] is True
    assert (record["matched"], record["scored"], record["errors"], record["skipped"]) == (
        10,
        7,
        2,
        1,
    )
    assert record["errors_by_reason"] == {"corrupt_image": 2}
    assert record["images_per_second"] == 3.5

    for short in (_counts(scored=6), _counts(errors=1), _counts(skipped=0), _counts(matched=11)):
        assert _record(tmp_path, short)["accounted"] is False
    assert _record(tmp_path, _counts(matched=9))["accounted"] is False  # more than matched


def test_a_missing_counts_record_is_not_accounted_and_says_so(tmp_path, capsys):
    record = _record(tmp_path, None)
    assert record["accounted"] is False
    for field in ("matched", "scored", "errors", "errors_by_reason", "skipped", "reconciled"):
        assert record[field] is None, field
    assert record["images_per_second"] is None

    with open(tmp_path / "run.json", "w") as f:
        json.dump(record, f)
    _, config = _config_and_options(tmp_path)
    assert print_run_summary(config) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("not accounted: the job wrote no counts record")
    assert "scored 0" not in first


def test_read_counts_takes_only_this_runs_whole_record(tmp_path):
    path = tmp_path / COUNTS_JSON
    assert read_counts(str(tmp_path), "r") is None  # missing

    path.write_text(json.dumps(_counts()))
    assert read_counts(str(tmp_path), "r") == _counts()
    assert read_counts(str(tmp_path), "another run") is None

    for broken in (
        _counts(scored=None),
        _counts(errors="2"),
        _counts(skipped=True),
        _counts(matched=-1),
        _counts(errors_by_reason={"corrupt_image": 1.5}),
        {k: v for k, v in _counts().items() if k != "reconciled"},
    ):
        path.write_text(json.dumps(broken))
        assert read_counts(str(tmp_path), "r") is None, broken
    path.write_text('{"matched": 1')  # cut short
    assert read_counts(str(tmp_path), "r") is None
