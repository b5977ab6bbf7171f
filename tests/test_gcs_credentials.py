"""Without Google Cloud credentials, any gs:// path is refused at start, in seconds, offline.

The environment is stripped of every credential source (``GOOGLE_APPLICATION_CREDENTIALS``,
gcloud's application default credentials file); there is no network here, so the metadata
server probe gets no answer either. Before the check, each file took about 200 s of retries.
"""

from __future__ import annotations

import time

import pytest

from pipeline import compare, credentials, predict_one, run, shard

PROMPT_S = 10.0


@pytest.fixture()
def no_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    return tmp_path


def _refused(capsys, call, prefix: str) -> str:
    start = time.monotonic()
    status = call()
    elapsed = time.monotonic() - start
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix)
    assert "gcloud auth application-default login" in lines[0]
    assert elapsed < PROMPT_S, f"took {elapsed:.1f} s"
    return lines[0]


@pytest.mark.parametrize("where", ["input", "output", "manifest"])
def test_the_job_refuses_gs_paths_without_credentials(no_credentials, model_path, capsys, where):
    root = no_credentials
    (root / "images").mkdir()
    manifest = root / "manifest.txt"
    manifest.write_text("# three remote images\ngs://bucket/a.png\ngs://bucket/b.png\n")
    argv = {
        "input": ["--input", "gs://bucket/images/*.png", "--output", str(root / "out")],
        "output": ["--input", f"{root}/images/*.png", "--output", "gs://bucket/out"],
        "manifest": ["--input_manifest", str(manifest), "--output", str(root / "out")],
    }[where]
    line = _refused(
        capsys, lambda: run.main([*argv, "--model", model_path()]), "batch-score: error: "
    )
    assert "no Google Cloud credentials found" in line
    assert not (root / "out").exists()


def test_a_credentials_file_that_does_not_exist_is_named(no_credentials, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(no_credentials / "absent.json"))
    problem = credentials.credentials_problem()
    assert "absent.json" in problem and "not a file" in problem


def test_a_credentials_file_is_enough(no_credentials, monkeypatch):
    key = no_credentials / "key.json"
    key.write_text("{}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    assert credentials.credentials_problem() is None


def test_the_tools_refuse_gs_paths_without_credentials(no_credentials, capsys):
    root = no_credentials
    _refused(
        capsys,
        lambda: compare.main(
            ["--baseline", "gs://b/run1", "--candidate", "gs://b/run2", "--output", str(root)]
        ),
        "",
    )
    _refused(
        capsys,
        lambda: shard.main(
            ["--input", "gs://b/*.png", "--output", str(root / "s"), "--format", "tfrecord"]
        ),
        "shard: error: ",
    )
    _refused(
        capsys,
        lambda: predict_one.main(["gs://b/x.png", "--model", str(root / "bundle")]),
        "predict_one: error: ",
    )
