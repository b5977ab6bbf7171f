"""``pipeline.compare`` on keys that are not one clean record a side: duplicates of a key in one
run (compared when they agree, ``ambiguous`` when they do not, whatever their order) and NaN
scores in both runs (the same value, not a difference)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import read_json, read_jsonl
from helpers import write_images

from pipeline import compare
from pipeline.run import run as score


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, model_path):
    root = tmp_path_factory.mktemp("cmpkeys")
    write_images(root / "images", 6)
    output = str(root / "run")
    argv = ["--input", f"{root}/images/*.png", "--output", output, "--model", model_path()]
    score([*argv, "--reconcile_fraction", "0", "--write_scores"], save_main_session=False)
    return output


def _copy(base_run, tmp_path, name, edit=None, extra=None) -> str:
    """A copy of the run, with ``edit(records)`` applied to its predictions and ``extra``
    records written into a second part file (sorting before or after the first)."""
    run = str(tmp_path / name)
    shutil.copytree(base_run, run)
    (part,) = os.listdir(os.path.join(run, "predictions"))
    path = os.path.join(run, "predictions", part)
    with open(path) as f:
        records = sorted((json.loads(line) for line in f), key=lambda r: r["key"])
    if edit:
        edit(records)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    for extra_name, extra_records in (extra or {}).items():
        with open(os.path.join(run, "predictions", extra_name), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in extra_records)
    return run


def _compare(tmp_path, baseline, candidate, name="cmp"):
    output = str(tmp_path / name)
    argv = ["--baseline", baseline, "--candidate", candidate, "--output", output]
    compare.run(argv, save_main_session=False)
    return output, read_json(os.path.join(output, "summary.json"))


def _nan_at(index):
    def edit(records):
        record = records[0]
        record["scores"] = [None if i == index else v for i, v in enumerate(record["scores"])]
        record["non_finite"], record["top_k"] = True, []

    return edit


@pytest.mark.slow
def test_a_run_with_a_nan_prediction_compared_with_itself_passes(tmp_path, base_run):
    run = _copy(base_run, tmp_path, "nan", edit=_nan_at(1))
    _, summary = _compare(tmp_path, run, run)
    assert (summary["verdict"], summary["cause"]) == ("pass", "non_finite_scores")
    assert (summary["non_finite"], summary["non_finite_same"], summary["identical"]) == (1, 1, 5)
    assert summary["max_abs_diff"] == 0.0
    assert "NaN or Inf scores in both runs at the same classes" in summary["evidence"][0]

    # NaN at another class in the other run is a difference, and not the same value.
    other = _copy(base_run, tmp_path, "nan_elsewhere", edit=_nan_at(2))
    _, summary = _compare(tmp_path, run, other, name="cmp_other")
    assert (summary["verdict"], summary["cause"]) == ("fail", "nondeterminism")
    assert (summary["non_finite"], summary["non_finite_same"]) == (1, 0)


@pytest.mark.parametrize("extra_part", ["part-00000-a.jsonl", "part-99999-z.jsonl"])
@pytest.mark.slow
def test_duplicates_that_disagree_make_the_key_ambiguous_in_any_order(
    tmp_path, base_run, extra_part
):
    records = read_jsonl(os.path.join(base_run, "predictions"))
    first = min(records, key=lambda r: r["key"])
    same = dict(first)
    shifted = dict(first, scores=[v + 0.5 for v in first["scores"]])
    agreeing = _copy(base_run, tmp_path, "agree", extra={extra_part: [same]})
    _, summary = _compare(tmp_path, base_run, agreeing, name="cmp_agree")
    assert (summary["verdict"], summary["identical"], summary["duplicate_keys"]) == ("pass", 6, 1)
    assert summary["ambiguous"] == 0

    ambiguous = _copy(base_run, tmp_path, "ambiguous", extra={extra_part: [shifted]})
    output, summary = _compare(tmp_path, base_run, ambiguous, name="cmp_ambiguous")
    assert summary["verdict"] == "inconclusive"
    assert (summary["ambiguous"], summary["ambiguous_keys"], summary["identical"]) == (
        1,
        [first["key"]],
        5,
    )
    assert summary["mismatch"] == 0 and summary["compared"] == 5
    (element,) = read_jsonl(os.path.join(output, "elements"))
    assert element["status"] == "ambiguous" and element["candidate_records"] == 2
