"""The job on every runner a user meets, against the in-process run of the same images.

Each runner scores 20 generated images and one file that is no image, ``--deterministic``, as
the real command line (a subprocess: its exit status, its own runner processes): in-process,
multi-process, Python's portable job service with EXTERNAL worker processes, Prism, and Flink
``[local]`` with parallelism 2. On each: exit 0, a complete ``run.json`` with the true counts,
the in-process predictions key by key (scores too), the same error records, the same verdict.

Prism and Flink need the binaries ``scripts/fetch_runners.sh`` fetches into ``.cache/runners/``;
without them their tests skip, saying so (``./run_tests.sh`` prints the reasons).
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import subprocess
import sys
import time

import helpers
import pytest
from conftest import read_json, read_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNERS_DIR = os.path.join(ROOT, ".cache", "runners")
PRISM = os.path.join(RUNNERS_DIR, "prism")
FLINK_JARS = sorted(glob.glob(os.path.join(RUNNERS_DIR, "beam-runners-flink-*-job-server-*.jar")))
NUM_IMAGES = 20
BATCH_SIZE = 4
BAD_FILE = "not_an_image.png"
START_SECONDS = 60
JOB_SECONDS = 300

pytestmark = pytest.mark.slow


def _env() -> dict:
    env = dict(os.environ)
    # Worker processes run the `python` on PATH and import this checkout.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    helpers.write_images(directory, NUM_IMAGES)
    (directory / BAD_FILE).write_bytes(b"plain text, not an image")
    return directory


@pytest.fixture(scope="module")
def job(corpus, model_path):
    def run(output, *runner_flags, command="pipeline.run", extra=()) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", command]
        if command == "pipeline.run":
            argv += ["--input", f"{corpus}/*.png", "--model", model_path("clean"),
                     "--batch_size", str(BATCH_SIZE), "--reconcile_fraction", "0.5",
                     "--reconcile_min", "0", "--sweep_batch_sizes", "1,3", "--write_scores",
                     "--deterministic"]  # fmt: skip
        argv += ["--output", str(output), *extra, *runner_flags]
        done = subprocess.run(
            argv, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=JOB_SECONDS
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    return run


@pytest.fixture(scope="module")
def in_process(job, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "in_process"
    job(output)
    return _outcome(output)


def _outcome(output) -> dict:
    errors = read_jsonl(os.path.join(output, "errors"))
    return {
        "run": read_json(os.path.join(output, "run.json")),
        "predictions": {p["key"]: p for p in read_jsonl(os.path.join(output, "predictions"))},
        "errors": sorted((e["uri"], e["stage"], e["reason"]) for e in errors),
        "summary": read_json(os.path.join(output, "reconciliation", "summary.json")),
    }


def _assert_same_job(actual: dict, expected: dict) -> None:
    record = actual["run"]
    assert record["status"] == "complete"
    assert (record["matched"], record["scored"], record["errors"]) == (
        NUM_IMAGES + 1,
        NUM_IMAGES,
        1,
    )
    assert record["errors_by_reason"] == {"unsupported_format": 1}
    assert record["accounted"] is True
    assert actual["errors"] == expected["errors"]
    assert [uri.rsplit("/", 1)[-1] for uri, _, _ in actual["errors"]] == [BAD_FILE]
    assert actual["predictions"].keys() == expected["predictions"].keys()
    assert len(actual["predictions"]) == NUM_IMAGES
    for key, prediction in expected["predictions"].items():
        assert actual["predictions"][key]["top_k"] == prediction["top_k"], key
        assert actual["predictions"][key]["scores"] == prediction["scores"], key
    # Provenance is exact: a batch id is shared by exactly batch_size predictions at positions
    # 0..batch_size-1. Only the names' last run and the run that lost the bad file may be short,
    # however the runner cut its bundles.
    batches: dict[str, list[tuple[int, int]]] = {}
    for prediction in actual["predictions"].values():
        batches.setdefault(prediction["batch_id"], []).append(
            (prediction["batch_size"], prediction["position"])
        )
    for members in batches.values():
        assert sorted(members) == [(len(members), i) for i in range(len(members))]
    assert sum(len(members) != BATCH_SIZE for members in batches.values()) <= 2
    for field in ("verdict", "compared", "mismatch"):
        assert actual["summary"][field] == expected["summary"][field], field
    assert expected["summary"]["verdict"] == "pass"
    # Sweep batches are cut from the key-sorted sample: the same sizes on every runner.
    assert _swept(actual) == _swept(expected) and _swept(expected)


def _swept(outcome: dict) -> dict:
    return {size: entry["compared"] for size, entry in outcome["summary"]["sweep"].items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{process.args} did not listen on port {port} in {START_SECONDS} s")


@contextlib.contextmanager
def _service(*module_and_args: str):
    """Runs ``python -m MODULE ARGS`` until the block ends (then stops it and its children)."""
    process = subprocess.Popen(
        [sys.executable, "-m", *module_and_args],
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.fixture(scope="module")
def job_service():
    """Python's portable job service and a pool of EXTERNAL SDK workers, on loopback ports."""
    job_port, worker_port = _free_port(), _free_port()
    runner = "apache_beam.runners.portability.local_job_service_main"
    workers = "apache_beam.runners.worker.worker_pool_main"
    with (
        _service(runner, "--port", str(job_port)) as jobs,
        _service(workers, "--service_port", str(worker_port)) as pool,
    ):
        _wait_for_port(job_port, jobs)
        _wait_for_port(worker_port, pool)
        yield ["--runner", "PortableRunner", "--job_endpoint", f"localhost:{job_port}",
               "--environment_type", "EXTERNAL",
               "--environment_config", f"localhost:{worker_port}"]  # fmt: skip


def _needs_prism():
    if not os.access(PRISM, os.X_OK):
        pytest.skip(f"Prism runner: no {PRISM}; run scripts/fetch_runners.sh")
    return ["--runner", "PrismRunner", "--prism_location", PRISM]


def test_multi_process(job, in_process, tmp_path):
    job(tmp_path / "out", "--direct_running_mode", "multi_processing", "--direct_num_workers", "2")
    _assert_same_job(_outcome(tmp_path / "out"), in_process)


def test_portable_job_service_with_external_workers(job, in_process, job_service, tmp_path):
    job(tmp_path / "out", *job_service)
    _assert_same_job(_outcome(tmp_path / "out"), in_process)


def test_prism(job, in_process, tmp_path):
    job(tmp_path / "out", *_needs_prism())
    _assert_same_job(_outcome(tmp_path / "out"), in_process)


def test_flink_local_parallelism_2(job, in_process, tmp_path):
    if not FLINK_JARS:
        pytest.skip(
            f"Flink runner: no Flink job server jar in {RUNNERS_DIR}; run "
            "scripts/fetch_runners.sh (it says whether the Maven registry serves one)"
        )
    flink = ["--runner", "FlinkRunner", "--flink_master", "[local]",
             "--flink_job_server_jar", FLINK_JARS[-1], "--parallelism", "2"]  # fmt: skip
    job(tmp_path / "out", *flink)
    _assert_same_job(_outcome(tmp_path / "out"), in_process)


def test_prism_compares_and_skips_existing(job, in_process, tmp_path, corpus):
    prism = _needs_prism()
    baseline = in_process["run"]["options"]["output"]
    job(tmp_path / "prism", *prism)
    # An incremental rerun: one new image besides the scored ones (and the bad file again).
    helpers.write_images(tmp_path / "new", 1, start=NUM_IMAGES)
    extra = ["--skip_existing", baseline, "--input", f"{tmp_path}/new/*.png"]
    job(tmp_path / "rerun", *prism, extra=extra)
    rerun = read_json(tmp_path / "rerun" / "run.json")
    assert (rerun["matched"], rerun["skipped"], rerun["scored"], rerun["errors"]) == (
        NUM_IMAGES + 2,
        NUM_IMAGES,
        1,
        1,
    )
    assert rerun["accounted"] is True
    job(tmp_path / "compare", *prism, command="pipeline.compare",
        extra=["--baseline", baseline, "--candidate", str(tmp_path / "prism")])  # fmt: skip
    summary = read_json(tmp_path / "compare" / "summary.json")
    assert summary["coverage"]["both"] == NUM_IMAGES
    assert summary["identical"] == NUM_IMAGES
    assert summary["verdict"] == "pass"
