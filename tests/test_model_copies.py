"""``--model_copies N``: Beam's RunInference loads the model (N copies a worker, shared by its
processes) and the per-element reference scores with the same copy, found under RunInference's
model identifier. The two-process case is in test_multiprocess.py."""

from __future__ import annotations

import os

import pytest
from conftest import read_json, read_jsonl, score_images

from pipeline.flags import UsageError
from pipeline.options import parse_args


@pytest.mark.slow  # two runs
def test_one_shared_copy_scores_both_paths_as_one_per_process_does(tmp_path, model_path):
    flags = ("--reconcile_fraction", "1", "--batch_size", "4", "--deterministic", "--write_scores")
    default = score_images(tmp_path / "default", model_path(), *flags, images=8)
    shared = score_images(
        tmp_path / "shared", model_path(), *flags, "--model_copies", "1", images=8
    )
    record = read_json(f"{shared}/run.json")
    assert record["options"]["model_copies"] == 1
    assert record["model_loads"] == read_json(f"{default}/run.json")["model_loads"] == 1
    summary = read_json(f"{shared}/reconciliation/summary.json")
    assert summary["verdict"] == "pass", summary["diagnosis"]
    assert summary["by_reference"]["single"]["compared"] == 8
    assert _scores_by_name(shared) == _scores_by_name(default)


def _scores_by_name(output: str) -> dict[str, list[float]]:
    return {os.path.basename(p["uri"]): p["scores"] for p in read_jsonl(f"{output}/predictions")}


@pytest.mark.parametrize("value", ["0", "-2"])
def test_model_copies_below_one_is_refused(value):
    with pytest.raises(UsageError, match=f"--model_copies {value}: must be at least 1"):
        parse_args(["--input", "x/*.png", "--output", "out", "--model_copies", value])
