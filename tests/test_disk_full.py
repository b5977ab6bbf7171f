"""A full disk: one line on stderr and exit status 1, never a traceback, in every command.

The output lies on a 2 MiB tmpfs filled to its last few KiB (needs root's mount; skipped where
mounting is not permitted); a full standard output is /dev/full. Each command runs as a child
process, so what reaches the terminal is exactly what a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import helpers
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")

# Every test runs a command in a child process (TensorFlow's import alone takes seconds).
pytestmark = pytest.mark.slow


def _command(module: str, *argv: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        env=ENV,
        cwd=REPO,
    )


def _said(stderr: str, prog: str) -> list[str]:
    """The command's own lines, and any trace of a traceback."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith(f"{prog}:") or "Traceback" in line or "Errno" in line
    ]


@pytest.fixture()
def full_disk(tmp_path):
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        free = os.statvfs(mount_point).f_bavail * os.statvfs(mount_point).f_frsize
        with open(mount_point / "filler", "wb") as f:
            f.write(b"\0" * (free - 8 * 1024))
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_is_one_line_and_exit_status_1(full_disk, tmp_path, model_path):
    helpers.write_images(tmp_path / "images", 40)
    output = full_disk / "out"
    argv = ["--input", f"{tmp_path}/images/*.png", "--model", model_path(), "--write_scores"]
    result = _command("pipeline.run", *argv, "--output", str(output))

    assert result.returncode == 1, result.stderr
    assert _said(result.stderr, "batch-score") == [
        f"batch-score: error: no space left on the device while writing {output}; the run is "
        "incomplete (run.json says so): free space, then rerun with --overwrite"
    ]
    with open(output / "run.json") as f:
        assert json.load(f)["status"] == "incomplete"


def _scored_run(tmp_path, model: str) -> str:
    from pipeline.run import run

    helpers.write_images(tmp_path / "images", 8)
    output = str(tmp_path / "run")
    run(["--input", f"{tmp_path}/images/*.png", "--model", model, "--output", output])
    return output


def _compare_argv(tmp_path, model_path):
    scored = _scored_run(tmp_path, model_path())
    return ["--baseline", scored, "--candidate", scored]


def _shard_argv(tmp_path, model_path):
    helpers.write_images(tmp_path / "images", 8)
    return ["--input", f"{tmp_path}/images/*.png", "--format", "parquet"]


def _export_argv(tmp_path, model_path):
    return ["--model", model_path()]


@pytest.mark.parametrize(
    "module, prog, inputs, left",
    [
        ("pipeline.compare", "batch-compare", _compare_argv, "the comparison there is"),
        ("pipeline.shard", "shard", _shard_argv, "the shards there are"),
        ("pipeline.export", "export", _export_argv, "the bundle there is"),
    ],
)
def test_every_command_says_a_full_output_disk_in_one_line(
    full_disk, tmp_path, model_path, module, prog, inputs, left
):
    output = full_disk / "out"
    result = _command(module, *inputs(tmp_path, model_path), "--output", str(output))

    assert result.returncode == 1, result.stderr
    assert _said(result.stderr, prog) == [
        f"{prog}: error: no space left on the device while writing {output}; {left} "
        "incomplete: free space, then rerun into a new --output"
    ]


def _predict_one_argv(tmp_path, model_path):
    from pipeline import export

    bundle = str(tmp_path / "bundle")
    assert export.main(["--model", model_path(), "--output", bundle]) == 0
    helpers.write_images(tmp_path / "images", 1)
    return ["--model", bundle, str(tmp_path / "images" / "img_0000.png")]


def _shard_to_argv(tmp_path, model_path):
    return [*_shard_argv(tmp_path, model_path), "--output", str(tmp_path / "shards")]


@pytest.mark.parametrize(
    "module, prog, inputs",
    [
        ("pipeline.predict_one", "predict_one", _predict_one_argv),
        ("pipeline.shard", "shard", _shard_to_argv),
    ],
)
def test_a_full_standard_output_is_one_line(tmp_path, model_path, module, prog, inputs):
    argv = inputs(tmp_path, model_path)
    with open("/dev/full", "w") as full:
        result = _command(module, *argv, stdout=full)

    assert result.returncode == 1, result.stderr
    assert _said(result.stderr, prog) == [
        f"{prog}: error: no space left on the device while writing standard output; what it "
        "printed is incomplete: free space, then rerun"
    ]
