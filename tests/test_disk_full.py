"""A full disk: one line on stderr and exit status 1, never Beam's ENOSPC tracebacks.

The output lies on a 2 MiB tmpfs filled to its last few KiB (needs root's mount; skipped where
mounting is not permitted). The job runs as a child process, so what reaches the terminal is
exactly what a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import helpers
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_exit_status_1(full_disk, tmp_path, model_path):
    helpers.write_images(tmp_path / "images", 40)
    output = full_disk / "out"
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    argv = ["--input", f"{tmp_path}/images/*.png", "--model", model_path(), "--write_scores"]
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.run", *argv, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )

    assert result.returncode == 1, result.stderr
    ours = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("batch-score:") or "Traceback" in line or "Errno" in line
    ]
    assert ours == [
        f"batch-score: error: no space left on the device while writing {output}; the run is "
        "incomplete (run.json says so): free space, then rerun with --overwrite"
    ]
    with open(output / "run.json") as f:
        assert json.load(f)["status"] == "incomplete"
