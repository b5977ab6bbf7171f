"""Every sentence true, every exit code meaningful: what a new user hit, on real runs."""

from __future__ import annotations

import os

import helpers
from conftest import read_json, read_jsonl

from pipeline.run import run as score


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
