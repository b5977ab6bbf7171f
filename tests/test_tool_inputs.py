"""The shard tool and predict_one read files under the scoring job's own checks: a FIFO, a
device or a file over --max_file_bytes is one line and exit 2, never a hang or an unbounded
read (``transforms.score.read_files.read_file``)."""

from __future__ import annotations

import os
import subprocess
import sys

import helpers
import pytest

from pipeline import predict_one, shard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from pipeline.export import export_bundle
    from transforms.core.preprocess import PreprocessSpec

    path = str(tmp_path_factory.mktemp("tool_inputs") / "bundle")
    export_bundle(helpers.build_model(), path, PreprocessSpec(helpers.IMAGE_SIZE))
    return path


def _odd_inputs(tmp_path) -> dict[str, str]:
    fifo = str(tmp_path / "pipe.png")
    os.mkfifo(fifo)
    big = tmp_path / "big.png"
    big.write_bytes(helpers.image_bytes(0) + b"\0" * 4096)
    return {"fifo": fifo, "device": "/dev/zero", "big": str(big)}


def _tool(module: str, *argv: str) -> subprocess.CompletedProcess:
    """The tool in a child process: a read that blocks fails the test instead of hanging it."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    "kind, words",
    [
        # A FIFO is read by the tool in a child process (a hang must fail, not block).
        pytest.param("fifo", ["a FIFO (named pipe)", "not_a_regular_file"], marks=pytest.mark.slow),
        ("device", ["a device", "not_a_regular_file"]),
        ("big", ["is over --max_file_bytes 3,000"]),
    ],
)
def test_shard_refuses_what_the_job_would_not_read_before_writing(tmp_path, capsys, kind, words):
    images = helpers.write_images(tmp_path / "images", 2)
    odd = _odd_inputs(tmp_path)[kind]
    output = tmp_path / "shards"
    argv = ["--input", f"{tmp_path}/images/*.png", "--input", odd, "--output", str(output)]
    argv += ["--format", "tfrecord", "--max_file_bytes", "3000"]
    if kind == "fifo":
        result = _tool("pipeline.shard", *argv)
        status, err = result.returncode, result.stderr
    else:
        status, err = shard.main(argv), capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith("shard: error: cannot read ")
    for word in words:
        assert word in lines[0]
    assert os.path.basename(odd) in lines[0]
    assert not output.exists() or not os.listdir(output)
    assert len(images) == 2


@pytest.mark.parametrize(
    "kind, words",
    [
        # A FIFO is read by the tool in a child process (a hang must fail, not block).
        pytest.param("fifo", ["a FIFO (named pipe)", "not_a_regular_file"], marks=pytest.mark.slow),
        ("device", ["a device", "not_a_regular_file"]),
        ("big", ["is over --max_file_bytes 3,000"]),
    ],
)
def test_predict_one_refuses_what_the_job_would_not_read(bundle, tmp_path, capsys, kind, words):
    image = _odd_inputs(tmp_path)[kind]
    argv = [image, "--model", bundle, "--max_file_bytes", "3000"]
    if kind == "fifo":
        result = _tool("pipeline.predict_one", *argv)
        status, err = result.returncode, result.stderr
    else:
        status, err = predict_one.main(argv), capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith("predict_one: error: cannot read ")
    for word in words:
        assert word in lines[0]


def test_predict_one_still_scores_a_file_within_the_limit(bundle, tmp_path, capsys):
    image = tmp_path / "ok.png"
    image.write_bytes(helpers.image_bytes(1))

    assert predict_one.main([str(image), "--model", bundle, "--max_file_bytes", "100000"]) == 0
    assert "online (serving_default via tfx-bsl)" in capsys.readouterr().out
