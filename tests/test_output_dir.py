"""The output directory is the user's: what survives each --output / --overwrite case.

Each case runs the real command line (``pipeline.run.main`` or ``run``) on DirectRunner into
a temporary directory and asserts exactly which files exist afterwards: the job removes only
files a previous run of it wrote, never treats --output as a pattern, never writes through a
symbolic link, and an interrupted run leaves a run.json that says ``incomplete``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import helpers
import pytest
from conftest import read_json

from pipeline import outputs
from pipeline.run import main, run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(root) -> dict[str, bytes]:
    """Every file under root (relative path -> contents), links not followed."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    found[os.path.relpath(path, root)] = f.read()
    return found


@pytest.fixture()
def images(tmp_path):
    helpers.write_images(tmp_path / "images", 6)
    return f"{tmp_path}/images/*.png"


def _argv(images: str, model: str, output: str, *flags: str) -> list[str]:
    return ["--input", images, "--model", model, "--output", output, *flags]


def _refused(capsys, argv) -> str:
    capsys.readouterr()  # only what the refused run says
    status = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("pattern, sibling", [("g/out*", "g/outA"), ("res[1]", "res1")])
def test_output_is_never_a_pattern(
    tmp_path, capsys, monkeypatch, images, model_path, pattern, sibling
):
    monkeypatch.chdir(tmp_path)
    for name in (sibling, "g/outB"):
        os.makedirs(name, exist_ok=True)
        with open(os.path.join(name, "run.json"), "w") as f:
            f.write(name + "\n")
    before = _files(tmp_path)
    for flags in ([], ["--overwrite"]):
        line = _refused(capsys, _argv(images, model_path(), pattern, *flags))
        assert "glob character" in line and pattern in line
    assert _files(tmp_path) == before


def test_overwrite_refuses_a_folder_that_never_held_a_run(tmp_path, capsys, images, model_path):
    folder = tmp_path / "u"
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / "my_results.csv").write_text("x\n")
    (folder / "run.json").write_text("A\n")  # a run.json, but not ours
    before = _files(tmp_path)
    line = _refused(capsys, _argv(images, model_path(), str(folder), "--overwrite"))
    assert "holds no previous run of this job" in line
    assert _files(tmp_path) == before


@pytest.mark.parametrize("output", ["/", "//", ".", "..", "CWD", "''"])
def test_root_current_directory_and_parents_are_refused(
    tmp_path, capsys, monkeypatch, images, model_path, output
):
    work = tmp_path / "work"
    (work / "predictions").mkdir(parents=True)
    (work / "predictions" / "part-00000-of-00001.jsonl").write_text("{}\n")
    monkeypatch.chdir(work)
    output = {"CWD": str(work), "''": ""}.get(output, output)
    before = _files(tmp_path)
    line = _refused(capsys, _argv(images, model_path(), output, "--overwrite"))
    assert "--output" in line
    assert _files(tmp_path) == before


@pytest.mark.slow
def test_a_symlinked_predictions_folder_is_refused(tmp_path, capsys, images, model_path):
    output = tmp_path / "out"
    run(_argv(images, model_path(), str(output)), save_main_session=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "part-00000-of-00001.jsonl").write_text("someone else's\n")
    for name in os.listdir(output / "predictions"):
        os.remove(output / "predictions" / name)
    os.rmdir(output / "predictions")
    os.symlink(elsewhere, output / "predictions")
    before = _files(tmp_path)
    line = _refused(capsys, _argv(images, model_path(), str(output), "--overwrite"))
    assert "predictions is a symbolic link" in line
    assert _files(tmp_path) == before


def test_a_symlinked_counts_record_is_refused(tmp_path, capsys, images, model_path):
    output = tmp_path / "out"
    output.mkdir()
    (tmp_path / "elsewhere.json").write_text("someone else's\n")
    os.symlink(tmp_path / "elsewhere.json", output / "counts.json")
    before = _files(tmp_path)
    line = _refused(capsys, _argv(images, model_path(), str(output)))
    assert "counts.json is a symbolic link" in line
    assert _files(tmp_path) == before


@pytest.mark.slow
def test_overwrite_replaces_only_the_previous_run(tmp_path, images, model_path):
    output = tmp_path / "out"
    run(_argv(images, model_path(), str(output), "--num_shards", "3"), save_main_session=False)
    first = read_json(output / "run.json")
    assert first["status"] == "complete" and first["job"] == outputs.JOB
    assert len([f for f in first["outputs"] if f.startswith("predictions/")]) == 3
    assert sorted(first["outputs"]) == sorted(f for f in _files(output) if f != "run.json")
    mine = {
        "notes.txt": b"mine\n",
        "predictions/my_results.csv": b"a,b\n",
        "predictions/part-00000-of-00001.csv": b"not our suffix\n",
        "reconciliation/my_report.html": b"<p>mine</p>\n",
        "extra/part-00000-of-00001.jsonl": b"our name, not our folder\n",
    }
    for name, data in mine.items():
        os.makedirs(os.path.dirname(output / name), exist_ok=True)
        (output / name).write_bytes(data)
    helpers.write_images(tmp_path / "images", 2, start=100)  # 8 images now

    run(_argv(images, model_path(), str(output), "--overwrite"), save_main_session=False)

    second = read_json(output / "run.json")
    after = _files(output)
    assert {name: after.get(name) for name in mine} == mine  # every user file kept, unchanged
    ours = sorted(f for f in after if f not in mine and f != "run.json")
    assert ours == sorted(second["outputs"])
    assert [f for f in ours if f.startswith("predictions/")] == [
        "predictions/part-00000-of-00001.jsonl"
    ]  # the first run's three shards are gone, none mixes with the new one
    assert second["status"] == "complete" and second["accounted"] is True
    shard = (output / "predictions" / "part-00000-of-00001.jsonl").read_text()
    keys = [json.loads(line)["key"] for line in shard.splitlines()]
    assert len(keys) == len(set(keys)) == second["matched"] == 8


def test_prepare_output_deletes_nothing_without_our_run_json(tmp_path):
    shard = tmp_path / "predictions" / "part-00000-of-00001.jsonl"
    shard.parent.mkdir()
    shard.write_text("{}\n")
    for run_json in ("A\n", "[]\n", json.dumps({"matched": 1})):
        (tmp_path / "run.json").write_text(run_json)
        before = _files(tmp_path)
        outputs.prepare_output(str(tmp_path), overwrite=True)
        assert _files(tmp_path) == before  # a stranger's run.json is not even replaced
    (tmp_path / "run.json").unlink()
    outputs.prepare_output(str(tmp_path), overwrite=True)
    assert read_json(tmp_path / "run.json") == {"job": outputs.JOB, "status": "incomplete"}
    assert shard.read_text() == "{}\n"


def test_prepare_output_removes_only_the_listed_files(tmp_path):
    for name in ("predictions/part-00000-of-00002.jsonl", "predictions/part-00001-of-00002.jsonl"):
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    record = {"job": outputs.JOB, "status": "complete"}
    record["outputs"] = ["predictions/part-00000-of-00002.jsonl", "../outside.txt"]
    (tmp_path / "run.json").write_text(json.dumps(record))
    (tmp_path.parent / "outside.txt").write_text("not ours\n")
    outputs.prepare_output(str(tmp_path), overwrite=True)
    assert sorted(_files(tmp_path)) == ["predictions/part-00001-of-00002.jsonl", "run.json"]
    assert (tmp_path.parent / "outside.txt").exists()


@pytest.mark.slow
def test_interrupted_run_says_so_and_overwrite_clears_it(tmp_path, images, model_path):
    """SIGTERM mid-run: one line, exit 130, run.json "incomplete"; a rerun replaces it all."""
    output = tmp_path / "out"
    argv = _argv(images, model_path(), str(output), "--reconcile_fraction", "1")
    argv += ["--sweep_batch_sizes", "1,2,3,4,5,6"]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    job = subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (output / "run.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    lines = [
        line for line in err.splitlines() if not line.startswith(("I0000", "WARNING: All", "note:"))
    ]
    assert job.returncode == 130
    assert lines == [f"batch-score: interrupted; outputs in {output} are incomplete"]
    assert read_json(output / "run.json")["status"] == "incomplete"

    run(argv[:6] + ["--overwrite"], save_main_session=False)
    record = read_json(output / "run.json")
    assert record["status"] == "complete" and record["accounted"] is True
    assert sorted(f for f in _files(output) if f != "run.json") == sorted(record["outputs"])


def test_prepare_output_never_reaches_through_a_linked_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "part-00000-of-00001.jsonl").write_text("someone else's\n")
    output = tmp_path / "out"
    output.mkdir()
    (output / "run.json").write_text(json.dumps({"job": outputs.JOB, "status": "incomplete"}))
    os.symlink(elsewhere, output / "predictions")
    outputs.prepare_output(str(output), overwrite=True)
    assert (elsewhere / "part-00000-of-00001.jsonl").exists()
    assert read_json(output / "run.json")["status"] == "incomplete"  # ours: replaced


@pytest.mark.parametrize("num_shards", [1, 3, 100_000, 1_234_567])
def test_overwrite_removes_every_shard_beam_names_for_any_shard_count(tmp_path, num_shards):
    """Shard names as Beam's sink forms them (5 digits, more past 99,999 shards) are ours."""
    from apache_beam.io.filebasedsink import FileBasedSink

    from transforms.io.writers import SHARD_TEMPLATE

    name_format = FileBasedSink._template_to_format(SHARD_TEMPLATE)
    names = [
        f"{folder}/part{name_format % {'shard_num': n, 'num_shards': num_shards}}.jsonl"
        for folder in ("predictions", "errors")
        for n in {0, num_shards - 1}
    ]
    for name in names:
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "run.json").write_text(json.dumps({"job": outputs.JOB, "status": "incomplete"}))
    assert all(outputs.is_our_file(name) for name in names)
    outputs.prepare_output(str(tmp_path), overwrite=True)
    assert sorted(_files(tmp_path)) == ["run.json"]
    assert read_json(tmp_path / "run.json") == {"job": outputs.JOB, "status": "incomplete"}


@pytest.mark.slow
def test_a_kill_during_overwrites_deletion_leaves_an_incomplete_run_json(tmp_path):
    """kill -9 while --overwrite deletes: run.json already says incomplete, never the old
    complete record over partial data; the next --overwrite still removes every old shard."""
    names = [f"predictions/part-0000{n}-of-00003.jsonl" for n in range(3)]
    for name in names:
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    record = {"job": outputs.JOB, "status": "complete", "outputs": names}
    (tmp_path / "run.json").write_text(json.dumps(record))
    killed_while_deleting = (
        "import os, signal, sys\n"
        "from pipeline import outputs\n"
        "outputs.FileSystems.delete = lambda paths: os.kill(os.getpid(), signal.SIGKILL)\n"
        "outputs.prepare_output(sys.argv[1], overwrite=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    job = subprocess.run([sys.executable, "-c", killed_while_deleting, str(tmp_path)], env=env)
    assert job.returncode == -signal.SIGKILL
    assert read_json(tmp_path / "run.json") == {"job": outputs.JOB, "status": "incomplete"}
    outputs.prepare_output(str(tmp_path), overwrite=True)
    assert sorted(_files(tmp_path)) == ["run.json"]


def _lock(output, **holder) -> None:
    os.makedirs(output, exist_ok=True)
    record = {"job": outputs.JOB, "started": "2026-01-01T00:00:00Z", "token": "t"} | holder
    (output / outputs.LOCK).write_text(json.dumps(record))


@pytest.mark.slow
def test_a_second_job_on_an_output_in_use_is_refused(tmp_path, capsys, images, model_path):
    """While a run holds its output (run.lock, created with O_EXCL), another job is refused
    with one line, exit 2, even with --overwrite, and nothing there changes."""
    output = tmp_path / "out"
    run(_argv(images, model_path(), str(output)), save_main_session=False)
    assert not (output / outputs.LOCK).exists()  # released at the end
    before = _files(output)
    with outputs.hold_output(str(output)):
        held = read_json(output / outputs.LOCK)
        assert (held["pid"], held["host"]) == (os.getpid(), socket.gethostname())
        line = _refused(capsys, _argv(images, model_path(), str(output), "--overwrite"))
        assert f"--output {str(output)!r} is in use by another run (pid {os.getpid()}" in line
        assert _files(output) == before | {outputs.LOCK: (output / outputs.LOCK).read_bytes()}
    # The other spellings of the output are refused too: a lock on the folder, not the string.
    _lock(output, pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time())
    line = _refused(capsys, _argv(images, model_path(), f"{output}/./", "--overwrite"))
    assert "is in use by another run" in line


@pytest.mark.slow
def test_a_stale_lock_is_taken_over(tmp_path, capsys, images, model_path):
    """Stale: the holder's pid is gone on this host, or its lease is not renewed for
    LEASE_SECONDS (another host); a fresh lease of another host is respected."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    output = tmp_path / "out"
    _lock(output, pid=gone.pid, host=socket.gethostname(), heartbeat=time.time())
    run(_argv(images, model_path(), str(output)), save_main_session=False)
    assert read_json(output / "run.json")["status"] == "complete"
    assert not (output / outputs.LOCK).exists()
    old = time.time() - outputs.LEASE_SECONDS - 5
    _lock(output, pid=1, host="elsewhere", heartbeat=old)
    run(_argv(images, model_path(), str(output), "--overwrite"), save_main_session=False)
    assert not (output / outputs.LOCK).exists()
    _lock(output, pid=1, host="elsewhere", heartbeat=time.time())
    line = _refused(capsys, _argv(images, model_path(), str(output), "--overwrite"))
    assert "(pid 1 on elsewhere, since 2026-01-01T00:00:00Z)" in line
    assert read_json(output / "run.json")["status"] == "complete"


@pytest.mark.slow
def test_two_jobs_on_one_output_one_is_refused_and_the_record_is_true(tmp_path, images, model_path):
    """The first job runs on; the second, with --overwrite, exits 2 in a line; the first's
    complete run.json lists exactly the files that exist."""
    output = tmp_path / "out"
    argv = _argv(images, model_path(), str(output), "--reconcile_fraction", "1")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    # The second job imports TensorFlow first and waits, so it starts while the first runs.
    waiting = (
        "import sys\nfrom pipeline.run import main\nprint('ready', flush=True)\ninput()\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    second = subprocess.Popen(
        [sys.executable, "-c", waiting, *argv, "--overwrite"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", *argv, "--sweep_batch_sizes", "1,2,3,4,5,6"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (output / outputs.LOCK).exists() and time.time() < deadline:
        time.sleep(0.05)
    while second.stdout.readline() not in ("ready\n", ""):
        pass  # whatever the imports print first
    second.stdin.write("go\n")
    second.stdin.flush()
    _, err = second.communicate(timeout=120)
    assert first.wait(timeout=300) == 0
    assert second.returncode == 2
    assert "is in use by another run" in err.strip().splitlines()[-1]
    record = read_json(output / "run.json")
    assert record["status"] == "complete" and record["accounted"]
    assert sorted(record["outputs"]) == sorted(f for f in _files(output) if f != "run.json")


@pytest.mark.slow
def test_overwrite_refuses_a_kept_file_named_like_the_new_runs_shards(
    tmp_path, capsys, images, model_path
):
    """A user's predictions/part-00000-of-00002.jsonl (not the previous run's, so kept) would
    be deleted by Beam's sink when the new run writes two shards: refused before any work."""
    output = tmp_path / "out"
    run(_argv(images, model_path(), str(output), "--num_shards", "3"), save_main_session=False)
    (output / "predictions" / "part-00000-of-00002.jsonl").write_text("mine\n")
    before = _files(output)
    argv = _argv(images, model_path(), str(output), "--overwrite", "--num_shards", "2")
    line = _refused(capsys, argv)
    assert "predictions/part-00000-of-00002.jsonl is named like the job's shards" in line
    assert _files(output) == before


@pytest.mark.parametrize("output_format", ["jsonl", "parquet", "tfrecord"])
def test_the_sinks_refuse_files_under_their_shard_names_and_delete_nothing(tmp_path, output_format):
    """A file that appears under the run's shard names while it runs: Beam's sink would
    delete it when finalizing; ours fails instead, and the file is intact."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline

    from transforms.core import prediction_formats
    from transforms.score.write import WritePredictions

    suffix = prediction_formats.SUFFIXES[output_format]
    theirs = tmp_path / "predictions" / f"part-00000-of-00001{suffix}"
    theirs.parent.mkdir()
    theirs.write_bytes(b"someone else's\n")
    record = {"key": "k", "uri": "u", "top_k": [], "scores": [0.5], "model_digest": "d"}
    record |= {"batch_size": 1, "batch_id": "b", "position": 0}
    pipeline = TestPipeline()
    _ = (
        pipeline
        | beam.Create([record])
        | WritePredictions(str(tmp_path), output_format, num_shards=1)
    )
    with pytest.raises(Exception, match="already under this run's shard names"):
        pipeline.run().wait_until_finish()
    assert theirs.read_bytes() == b"someone else's\n"
