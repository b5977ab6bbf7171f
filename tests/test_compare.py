"""Comparing two real runs key by key (``pipeline.compare``), reading every output format back,
``predict_one --against`` on typed outputs, and ``--skip_existing`` reruns."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import helpers
import pytest
from conftest import read_json, read_jsonl

from pipeline import compare, export, predict_one
from pipeline.run import run as score


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    directory = tmp_path_factory.mktemp("images")
    helpers.write_images(directory, 20)
    return str(directory)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, images, model_path):
    """A cache of real runs over the same 20 images: name -> output directory."""
    root = tmp_path_factory.mktemp("runs")
    cache = {}

    def get(name: str, *flags: str, model: str | None = None, pattern: str = "*.png") -> str:
        if name not in cache:
            output = str(root / name)
            argv = ["--input", f"{images}/{pattern}", "--output", output]
            argv += ["--model", model or model_path(), "--reconcile_fraction", "0"]
            score([*argv, *flags], save_main_session=False)
            cache[name] = output
        return cache[name]

    return get


def _compare(tmp_path, baseline, candidate, *flags, name="cmp"):
    output = str(tmp_path / name)
    argv = ["--baseline", baseline, "--candidate", candidate, "--output", output, *flags]
    compare.run(argv, save_main_session=False)
    summary = read_json(os.path.join(output, "summary.json"))
    return output, summary


@pytest.mark.slow
def test_a_run_against_itself_is_identical_everywhere(tmp_path, scored):
    run = scored("b8", "--batch_size", "8", "--write_scores")
    output, summary = _compare(tmp_path, run, run)
    assert summary["compared"] == summary["identical"] == 20
    assert summary["coverage"] == {
        "baseline": 20,
        "candidate": 20,
        "both": 20,
        "only_baseline": 0,
        "only_candidate": 0,
    }
    assert summary["basis"] == "scores" and summary["top1_flips"] == 0
    assert summary["changes"] == [] and summary["cause"] == "none"
    assert summary["verdict"] == "pass" and summary["max_abs_diff"] == 0.0
    assert summary["drift"]["psi"] == pytest.approx(0.0)
    assert read_jsonl(os.path.join(output, "elements")) == []
    html = Path(output, "report.html").read_text(encoding="utf-8")
    assert "Run comparison report" in html and "PASS" in html


@pytest.mark.slow
def test_batch_8_vs_32_is_numeric_and_within_tolerance(tmp_path, scored):
    b8 = scored("b8", "--batch_size", "8", "--write_scores")
    b32 = scored("b32", "--batch_size", "32", "--write_scores")
    _, summary = _compare(tmp_path, b8, b32)
    assert summary["cause"] == "numeric"
    assert [c["what"] for c in summary["changes"]] == ["options.batch_size"]
    assert summary["identical"] + summary["within_tolerance"] == summary["compared"] == 20
    assert summary["verdict"] == "pass" and summary["top1_flips"] == 0
    # Provenance: every key moved from a batch of 8 (or the last 4) to one batch of 20.
    assert set(summary["by_batch_shape"]) == {"8->20", "4->20"}
    run_json = read_json(os.path.join(b32, "run.json"))
    environment = run_json["environment"]
    assert environment["runner"] == "DirectRunner" and environment["threads"]["cpu_count"]
    assert isinstance(environment["cpu_flags"], list) and "gpus" in environment


@pytest.mark.slow
def test_normalization_change_is_a_preprocessing_change_with_flips(tmp_path, scored):
    unit = scored("unit", "--normalization", "unit", "--write_scores")
    symmetric = scored("symmetric", "--normalization", "symmetric", "--write_scores")
    output, summary = _compare(tmp_path, unit, symmetric)
    assert summary["cause"] == "preprocessing_change"
    assert "preprocessing.normalization" in {c["what"] for c in summary["changes"]}
    assert summary["mismatch"] > 0 and summary["top1_flips"] > 0
    assert summary["verdict"] == "changed"
    elements = read_jsonl(os.path.join(output, "elements"))
    assert len(elements) == 20 - summary["identical"]
    assert sum(not e["top1_match"] for e in elements) == summary["top1_flips"]


@pytest.mark.slow
def test_two_models_are_a_model_change_with_a_flip_matrix(tmp_path, scored, models_dir):
    other = helpers.save_model(str(models_dir / "other"), "clean", seed=1)
    a = scored("b8", "--batch_size", "8", "--write_scores")
    b = scored("other", "--batch_size", "8", "--write_scores", model=other)
    output, summary = _compare(tmp_path, a, b)
    assert summary["cause"] == "model_change" and summary["changes"][0]["what"] == "model_digest"
    assert summary["top1_flips"] > 0
    assert sum(f["count"] for f in summary["flips"]) == summary["top1_flips"]
    assert all(f["from"] != f["to"] for f in summary["flips"])
    html = Path(output, "report.html").read_text(encoding="utf-8")
    assert "Top-1 flips" in html and "CHANGED" in html
    # A model change is a report, not a failure, unless asked; asked, it exits 3.
    argv = ["--baseline", a, "--candidate", b, "--output", str(tmp_path / "again")]
    assert compare.main(argv) == 0
    assert compare.main([*argv, "--overwrite", "--fail_on_mismatch"]) == 3


@pytest.mark.slow
def test_a_candidate_missing_inputs_counts_only_baseline(tmp_path, scored):
    full = scored("b8", "--batch_size", "8", "--write_scores")
    part = scored("part", "--batch_size", "8", "--write_scores", pattern="img_000*.png")
    output, summary = _compare(tmp_path, full, part)
    assert summary["only_baseline"] == 10 and summary["only_candidate"] == 0
    assert summary["compared"] == 10
    missing = [e for e in read_jsonl(os.path.join(output, "elements"))]
    assert sorted(os.path.basename(e["key"]) for e in missing) == [
        f"img_{i:04d}.png" for i in range(10, 20)
    ]
    _, reverse = _compare(tmp_path, part, full, name="reverse")
    assert reverse["only_candidate"] == 10


@pytest.mark.slow
def test_parquet_tfrecord_and_jsonl_outputs_of_one_model_compare(tmp_path, scored):
    jsonl = scored("b8", "--batch_size", "8", "--write_scores")
    parquet = scored("parquet", "--batch_size", "8", "--write_scores", "--output_format", "parquet")
    tfrecord = scored("tfrecord", "--batch_size", "8", "--output_format", "tfrecord")
    _, summary = _compare(tmp_path, jsonl, parquet)
    assert summary["identical"] == summary["compared"] == 20
    assert (summary["baseline_format"], summary["candidate_format"]) == ("jsonl", "parquet")
    _, summary = _compare(tmp_path, parquet, tfrecord, name="typed")
    assert summary["identical"] == summary["compared"] == 20 and summary["basis"] == "scores"
    plain = scored("plain", "--batch_size", "8")
    _, summary = _compare(tmp_path, plain, tfrecord, name="topk")
    assert summary["basis"] == "top_k" and summary["identical"] == 20
    assert "top-k" in summary["basis_note"]


@pytest.mark.slow
def test_sampled_comparison_bounds_the_rates(tmp_path, scored):
    run = scored("b8", "--batch_size", "8", "--write_scores")
    _, summary = _compare(tmp_path, run, run, "--sample_fraction", "0.5")
    assert 0 < summary["compared"] < 20
    assert summary["mismatch_rate_upper"] == pytest.approx(1 - 0.05 ** (1 / summary["compared"]))


@pytest.mark.slow
def test_bad_runs_exit_2_with_one_line_and_no_overlap_is_inconclusive(tmp_path, scored, capsys):
    run = scored("b8", "--batch_size", "8", "--write_scores")
    out = str(tmp_path / "out")

    def refused(*argv) -> str:
        capsys.readouterr()  # only what the refused comparison says
        assert compare.main(list(argv)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not os.path.exists(out)
        return err

    assert "holds no run" in refused(
        "--baseline", str(tmp_path), "--candidate", run, "--output", out
    )
    assert "did you mean --candidate" in refused(
        "--baseline", run, "--candidat", run, "--output", out
    )
    mixed = str(tmp_path / "mixed")
    shutil.copytree(run, mixed)
    parquet = scored("parquet", "--batch_size", "8", "--write_scores", "--output_format", "parquet")
    shutil.copy(glob.glob(f"{parquet}/predictions/part-*")[0], f"{mixed}/predictions/")
    assert "mixes prediction formats" in refused(
        "--baseline", run, "--candidate", mixed, "--output", out
    )
    three = tmp_path / "three" / "predictions"
    three.mkdir(parents=True)
    record = read_jsonl(os.path.join(run, "predictions"))[0]
    (three / "part-00000-of-00001.jsonl").write_text(
        json.dumps(record | {"scores": record["scores"][:3]}) + "\n"
    )
    assert "different class counts" in refused(
        "--baseline", run, "--candidate", str(three.parent), "--output", out
    )
    # Keys nobody shares: a verdict that says so (exit 3 only when asked to fail).
    (three / "part-00000-of-00001.jsonl").write_text(json.dumps(record | {"key": "x"}) + "\n")
    argv = ["--baseline", run, "--candidate", str(three.parent), "--output", out]
    assert compare.main(argv) == 0
    summary = read_json(os.path.join(out, "summary.json"))
    assert summary["verdict"] == "inconclusive" and summary["cause"] == "no_common_keys"
    assert summary["only_baseline"] == 20 and summary["only_candidate"] == 1
    assert compare.main([*argv, "--overwrite", "--fail_on_mismatch"]) == 3


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, model_path):
    path = str(tmp_path_factory.mktemp("bundles") / "tiny_bundle")
    assert export.main(["--model", model_path(), "--output", path]) == 0
    return path


@pytest.mark.parametrize("output_format", ["parquet", "tfrecord"])
@pytest.mark.slow
def test_predict_one_against_typed_outputs(scored, bundle, images, output_format, capsys):
    output = scored(f"bundle_{output_format}", "--output_format", output_format, model=bundle)
    image = sorted(glob.glob(f"{images}/*.png"))[3]
    assert predict_one.main([image, "--model", bundle, "--against", output]) == 0
    printed = capsys.readouterr().out
    assert "real rows, at position" in printed
    record = predict_one.find_batch_prediction(output, os.path.relpath(image))
    assert record is not None and record["key"] == image


@pytest.mark.slow
def test_skip_existing_scores_only_what_is_new(tmp_path, model_path):
    images = tmp_path / "images"
    helpers.write_images(images, 20)
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    first = str(tmp_path / "first")
    # Any output format can be skipped from: the first run writes Parquet (read by column).
    score([*argv, "--output", first, "--output_format", "parquet"], save_main_session=False)
    again = str(tmp_path / "again")
    score([*argv, "--output", again, "--skip_existing", first], save_main_session=False)
    record = read_json(os.path.join(again, "run.json"))
    assert (record["matched"], record["scored"], record["skipped"]) == (20, 0, 20)
    assert record["accounted"] and read_jsonl(os.path.join(again, "predictions")) == []
    helpers.write_images(images, 10, start=20)
    more = str(tmp_path / "more")
    score(
        [*argv, "--output", more, "--skip_existing", first, "--skip_existing", again],
        save_main_session=False,
    )
    record = read_json(os.path.join(more, "run.json"))
    assert (record["matched"], record["scored"], record["skipped"]) == (30, 10, 20)
    assert record["accounted"]
    scored_now = {os.path.basename(r["key"]) for r in read_jsonl(os.path.join(more, "predictions"))}
    assert scored_now == {f"img_{i:04d}.png" for i in range(20, 30)}


@pytest.mark.slow
def test_skip_existing_never_reads_a_skipped_file(tmp_path, model_path):
    """The join runs on URIs before any read: a scored image since replaced by a FIFO (which
    a read would report as not_a_regular_file) is skipped, not an error."""
    images = tmp_path / "images"
    paths = helpers.write_images(images, 4)
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    first = str(tmp_path / "first")
    score([*argv, "--output", first], save_main_session=False)
    os.remove(paths[1])
    os.mkfifo(paths[1])
    again = str(tmp_path / "again")
    score([*argv, "--output", again, "--skip_existing", first], save_main_session=False)
    record = read_json(os.path.join(again, "run.json"))
    assert (record["matched"], record["skipped"], record["errors"]) == (4, 4, 0)
    assert record["accounted"]


def test_skip_existing_refuses_its_own_output_and_a_path_without_a_run(tmp_path, model_path):
    from pipeline.flags import UsageError

    images = tmp_path / "images"
    helpers.write_images(images, 2)
    out = str(tmp_path / "out")
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--output", out]
    with pytest.raises(UsageError, match="names the --output itself"):
        score([*argv, "--skip_existing", out + "/"], save_main_session=False)
    with pytest.raises(UsageError, match="holds no run"):
        score([*argv, "--skip_existing", str(images)], save_main_session=False)
    assert not os.path.exists(out)


@pytest.mark.slow
def test_skip_existing_of_the_output_under_another_spelling_is_refused(
    tmp_path, monkeypatch, model_path
):
    """Paths are compared where they point, not as strings: ./OUT, file://, a link to OUT."""
    from pipeline.flags import UsageError

    helpers.write_images(tmp_path / "images", 2)
    monkeypatch.chdir(tmp_path)
    argv = ["--input", "images/*.png", "--model", model_path(), "--output", "out", "--overwrite"]
    score(argv[:6], save_main_session=False)
    before = sorted(os.listdir(tmp_path / "out"))
    os.symlink(tmp_path / "out", tmp_path / "link")
    for spelling in ("./out", "out/.", f"file://{tmp_path}/out", str(tmp_path / "link")):
        with pytest.raises(UsageError, match="names the --output itself"):
            score([*argv, "--skip_existing", spelling], save_main_session=False)
    assert sorted(os.listdir(tmp_path / "out")) == before
    assert read_json(tmp_path / "out" / "run.json")["status"] == "complete"


def _cut_lines(run_dir: str, cut: dict[int, bytes | None]) -> None:
    """Rewrites a run's one JSONL shard: line i replaced by cut[i] (None: its first half)."""
    (shard,) = glob.glob(f"{run_dir}/predictions/part-*.jsonl")
    with open(shard, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    for i, replacement in cut.items():
        lines[i] = lines[i][: len(lines[i]) // 2] + b"\n" if replacement is None else replacement
    with open(shard, "wb") as f:
        f.write(b"".join(lines))


@pytest.mark.slow
def test_skip_existing_counts_unreadable_lines_of_an_earlier_run_and_scores_them(
    tmp_path, model_path, capsys
):
    """A line cut off (or not UTF-8) in an earlier run is counted in run.json and said once;
    the job finishes and scores those keys again."""
    from pipeline.run import main

    images = tmp_path / "images"
    helpers.write_images(images, 6)
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    first = str(tmp_path / "first")
    score([*argv, "--output", first, "--num_shards", "1"], save_main_session=False)
    _cut_lines(first, {1: None, 4: b'\xff\xfe{"key": "x"}\n'})
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "again"), "--skip_existing", first]) == 0
    out = capsys.readouterr().out
    record = read_json(tmp_path / "again" / "run.json")
    assert (record["matched"], record["skipped"], record["scored"]) == (6, 4, 2)
    assert record["skip_existing_unreadable_lines"] == 2 and record["accounted"]
    assert "note: 2 line(s) of the --skip_existing runs' predictions hold no readable" in out


@pytest.mark.slow
def test_compare_counts_a_cut_off_line_and_reports_it(tmp_path, scored):
    run = scored("b8", "--batch_size", "8", "--write_scores")
    cut = str(tmp_path / "cut")
    shutil.copytree(run, cut)
    # The copy's records in one shard, so line 3 is one known record.
    records = b""
    for shard in sorted(glob.glob(f"{cut}/predictions/part-*.jsonl")):
        records += Path(shard).read_bytes()
        os.remove(shard)
    Path(f"{cut}/predictions/part-00000-of-00001.jsonl").write_bytes(records)
    _cut_lines(cut, {3: None})
    _, summary = _compare(tmp_path, run, cut)
    assert summary["unreadable_lines"] == {"baseline": 0, "candidate": 1}
    assert (summary["only_baseline"], summary["only_candidate"]) == (1, 0)
    assert summary["identical"] == 19
    assert any("1 line(s) of --candidate's predictions" in line for line in summary["evidence"])


@pytest.mark.parametrize("runs", [500])
@pytest.mark.slow
def test_skip_existing_of_hundreds_of_earlier_runs(tmp_path, model_path, runs):
    """500 earlier runs once hit RecursionError in the metrics query (a read per run made
    the local runner's per-stage metrics nest that deep); now one read serves them all."""
    images = tmp_path / "images"
    helpers.write_images(images, 4)
    argv = ["--input", f"{images}/*.png", "--model", model_path(), "--reconcile_fraction", "0"]
    first = str(tmp_path / "first")
    score([*argv, "--output", first, "--num_shards", "1"], save_main_session=False)
    (shard,) = glob.glob(f"{first}/predictions/part-*.jsonl")
    lines = Path(shard).read_text().splitlines(keepends=True)
    flags = []
    for i in range(runs):  # each earlier run scored one of the first three images
        predictions = tmp_path / "runs" / str(i) / "predictions"
        predictions.mkdir(parents=True)
        (predictions / "part-00000-of-00001.jsonl").write_text(lines[i % 3])
        flags += ["--skip_existing", str(predictions.parent)]
    score([*argv, "--output", str(tmp_path / "again"), *flags], save_main_session=False)
    record = read_json(tmp_path / "again" / "run.json")
    assert (record["matched"], record["skipped"], record["scored"]) == (4, 3, 1)


@pytest.mark.slow
def test_skip_existing_of_another_model_scores_everything_and_says_why(
    tmp_path, model_path, models_dir, capsys
):
    images = tmp_path / "images"
    helpers.write_images(images, 6)
    other = helpers.save_model(str(models_dir / "other_skip"), "clean", seed=2)
    base = ["--input", f"{images}/*.png", "--reconcile_fraction", "0"]
    first = str(tmp_path / "first")
    score([*base, "--model", other, "--output", first], save_main_session=False)
    capsys.readouterr()
    again = str(tmp_path / "again")
    argv = [*base, "--model", model_path(), "--output", again, "--skip_existing", first]
    score(argv, save_main_session=False)
    assert "scoring its keys again" in capsys.readouterr().err
    record = read_json(os.path.join(again, "run.json"))
    assert (record["scored"], record["skipped"]) == (6, 0) and record["accounted"]
    assert "model digest" in record["skip_existing_notes"][0]


@pytest.mark.slow
def test_overwrite_replaces_only_a_comparison_and_keeps_other_files(tmp_path, scored, capsys):
    run = scored("b8", "--batch_size", "8", "--write_scores")
    output, _ = _compare(tmp_path, run, run)
    notes = Path(output, "elements", "my_notes.txt")
    notes.write_text("mine")
    Path(output, "keep.csv").write_text("mine too")
    _compare(tmp_path, run, run, "--overwrite")
    assert notes.read_text() == "mine" and Path(output, "keep.csv").read_text() == "mine too"
    assert read_json(os.path.join(output, "summary.json"))["identical"] == 20
    # A folder that never held a comparison (here a scoring run) is refused, untouched.
    before = sorted(p.name for p in Path(run).rglob("*"))
    argv = ["--baseline", run, "--candidate", run, "--output", run, "--overwrite"]
    capsys.readouterr()
    assert compare.main(argv) == 2
    assert "holds no previous run" in capsys.readouterr().err
    assert sorted(p.name for p in Path(run).rglob("*")) == before
