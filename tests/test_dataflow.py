"""The Dataflow job, built and validated offline with Beam's dry run (nothing is submitted).

``--no_auth --dry_run=True --sdk_location container`` make DataflowRunner do everything but talk
to Google Cloud: expand the whole graph, apply its overrides, validate the options, build the
``--setup_file`` sdist it would stage (``python setup.py sdist``, a few seconds, offline) and
translate the job. A network guard (a ``sys.addaudithook`` on socket calls) turns any attempt to
reach gs:// or any other host while that happens into an immediate failure instead of minutes of
retries: the launcher must not read the model, the inputs or a manifest; workers do.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tarfile
from pathlib import Path

import apache_beam
import pytest
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.runner import PipelineState

from pipeline.run import main, run

REPO = Path(__file__).resolve().parents[1]
# Beam validates names before anything else: a bucket needs 3+ lowercase characters
# (gs://B would fail validation), a project id must look like one.
BUCKET = "gs://batch-score-dry-run"
DATAFLOW = [
    "--runner",
    "DataflowRunner",
    "--project",
    "batch-score-test",
    "--region",
    "us-central1",
    "--temp_location",
    f"{BUCKET}/tmp",
    "--setup_file",
    "./setup.py",
    "--no_auth",
    "--dry_run=True",
    "--sdk_location",
    "container",
]
JOB = [
    "--model",
    f"{BUCKET}/models/mobilenet_v2.keras",
    "--input",
    f"{BUCKET}/images/*.jpg",
    "--output",
    f"{BUCKET}/out",
    "--reconcile_fraction",
    "0.1",
    "--sweep_batch_sizes",
    "1,8",
]
# Every shuffle the job may contain, by where it sits. Anything else (for instance a
# GroupByKey between scoring and rescoring, which would ship every sampled tensor and score
# vector across the job) fails the test.
ALLOWED_SHUFFLES = (
    "ReadImages/DeduplicateUris/",  # Distinct by URI: the reshuffle after matching
    "ReadImages/CountMatched/",  # one count, which sizes the reconciliation sample
    "ReadImages/BatchNames/",  # names in runs of batch_size, so no bundle cuts a batch
    "Reconcile/Summarize/",  # CombineGlobally: one small summary record
    "Reconcile/CountPredictions/",  # one count, what the guarantee is stated over
    "Reconcile/CountExifOriented/",  # one count, the images whose EXIF says rotate
    # The first probe candidate of each kind: a combine of a few small records per worker.
    "Reconcile/ProbeChosenElements/ChooseFirstOfEachKind/",
    # --sweep_batch_sizes only (JOB asks for it): the sample's tensors grouped by a key hash,
    # so sweep batches are the data's, not the bundles'; an opt-in diagnostic's price.
    "Reconcile/SweepBatchSizes/GroupByBucket",
    "WritePredictions/",  # WriteToText's finalisation of its shards
    "WriteErrors/",
    "WriteReconciliation/",
    "CountOutcomes/",  # combines of the job's own counts: a few numbers per worker
)


class NetworkForbidden(BaseException):
    """Raised by the audit hook. A BaseException, so no ``except Exception`` and no retry
    decorator in Beam or google-auth can swallow it and keep retrying."""


_GUARD = {"on": False, "attempts": []}


def _audit(event: str, args: tuple, guard: dict = _GUARD) -> None:
    # ``guard`` is bound here: at interpreter exit the module's globals are already None, and
    # the hook still runs (audit hooks cannot be removed).
    if not guard["on"]:
        return
    if event == "socket.getaddrinfo" or (
        event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6)
    ):
        guard["attempts"].append((event, args[1] if event == "socket.connect" else args[0]))
        raise NetworkForbidden(f"network access during a dry run: {event} {args!r}")


_HOOK_INSTALLED = []


# Not needed to build the package; data/ and .venv are large.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "data", "out", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """No network while the job is built; the cwd holds the repo's sources so ``./setup.py``
    resolves. A copy, because ``setup.py sdist`` creates and deletes ``batch-score-0.1.0/``
    in its directory: two builds in one checkout (pytest -n 2) delete each other's files."""
    if not _HOOK_INSTALLED:  # audit hooks cannot be removed: install once, switch per test
        sys.addaudithook(_audit)
        _HOOK_INSTALLED.append(True)
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=_NOT_SOURCE)
    monkeypatch.chdir(checkout)
    _GUARD["attempts"] = []
    _GUARD["on"] = True
    try:
        yield _GUARD["attempts"]
    finally:
        _GUARD["on"] = False


def _transforms(result) -> dict[str, beam_runner_api_pb2.PTransform]:
    pipeline = result.job.proto_pipeline
    return {t.unique_name: t for t in pipeline.components.transforms.values()}


def _staged_sdist(result) -> Path:
    """The local file DataflowRunner would upload as workflow.tar.gz (from --setup_file)."""
    pipeline = result.job.proto_pipeline
    for environment in pipeline.components.environments.values():
        for artifact in environment.dependencies:
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
                artifact.role_payload
            )
            if role.staged_name == "workflow.tar.gz":
                return Path(
                    beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
                )
    raise AssertionError("no workflow.tar.gz staged: --setup_file was ignored")


@pytest.mark.slow
def test_full_dataflow_job_builds_offline_with_named_stages(offline):
    result = run(DATAFLOW + JOB)

    assert offline == []
    assert result.state == PipelineState.DONE
    transforms = _transforms(result)
    for stage in (
        "ReadImages/MatchInputs/MatchPatterns",
        "ReadImages/DeduplicateUris",
        "ReadImages/ReadBytes",
        "Preprocess/DecodeAndPreprocess",
        "Score[bs=32]/RunInference",
        "Score[bs=32]/RouteOutcomes",
        "FormatPredictions",
        "WritePredictions",
        "MergeErrors",
        "WriteErrors",
        "Reconcile/KeepSampled",
        "Reconcile/RescoreAlone",
        "Reconcile/SweepBatchSizes/GroupByBucket",
        "Reconcile/Summarize",
        "WriteReconciliation/WriteElements",
        "WriteReconciliation/WriteSummary",
    ):
        assert stage in transforms, f"{stage} missing from the Dataflow job"

    shuffles = sorted(
        name
        for name, t in transforms.items()
        if t.spec.urn == common_urns.primitives.GROUP_BY_KEY.urn
    )
    # Matching is followed by a shuffle keyed by URI, so reading and decoding spread over all
    # workers instead of staying fused to the one worker that expanded the glob.
    assert "ReadImages/DeduplicateUris/Group/GroupByKey" in shuffles
    assert [name for name in shuffles if not name.startswith(ALLOWED_SHUFFLES)] == []
    # The summary is a CombineGlobally (mergeable accumulators, one output record).
    summarize = transforms["Reconcile/Summarize/CombinePerKey"]
    assert summarize.spec.urn == common_urns.composites.COMBINE_PER_KEY.urn
    assert "Reconcile/Summarize/KeyWithVoid" in transforms
    assert "Reconcile/Summarize/InjectDefault" in transforms

    # The job runs in Beam's own SDK container for this Python (the base of our Dockerfile)
    # and stages our package, built from setup.py, for the workers to pip install.
    environments = result.job.proto_pipeline.components.environments.values()
    images = {
        beam_runner_api_pb2.DockerPayload.FromString(e.payload).container_image
        for e in environments
        if e.urn == common_urns.environments.DOCKER.urn
    }
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    expected = f"beam_python{python}_sdk:{apache_beam.__version__}"
    assert any(image.endswith(expected) for image in images), images
    with tarfile.open(_staged_sdist(result)) as sdist:
        names = sdist.getnames()
    assert "batch-score-0.1.0/pipeline/run.py" in names
    assert "batch-score-0.1.0/transforms/core/model_reading.py" in names


@pytest.mark.slow
def test_manifest_and_serving_job_reads_nothing_while_building(offline):
    """A gs:// manifest is read by workers, not listed by the launcher (it was: a hang), and so
    is the serving bundle."""
    result = run(
        DATAFLOW
        + [
            "--model",
            f"{BUCKET}/models/bundle",
            "--serving_model",
            f"{BUCKET}/models/serving_bundle",
            "--input_manifest",
            f"{BUCKET}/manifests/uris.txt",
            "--output",
            f"{BUCKET}/out",
            "--batch_size",
            "64",
            "--pad_batches",
        ]
    )

    assert offline == []
    transforms = _transforms(result)
    assert "ReadImages/MatchInputs/ReadManifest" in transforms
    assert "ReadImages/MatchInputs/MatchPatterns" not in transforms
    assert "Score[bs=64]/RunInference" in transforms
    assert "ServingReference/RunServingSignature" in transforms
    # No --sweep_batch_sizes: no sweep step, so no shuffle of the sample's tensors.
    assert not [name for name in transforms if "SweepBatchSizes" in name]


@pytest.mark.slow
def test_main_dry_run_exits_zero_and_prints_nothing_stray(offline, capfd):
    assert main(DATAFLOW + JOB) == 0
    assert offline == []
    # capfd, not capsys: the stray lines came from child processes (Beam's staging tries
    # `python -m build` first: "No module named build"), which write to file descriptor 2.
    out, err = capfd.readouterr()
    assert out == "dry run: the job was built and validated; nothing was run\n"
    assert err == ""


@pytest.mark.parametrize("flag", ["--model", "--output", "--input"])
def test_local_paths_are_refused_for_dataflow_without_touching_them(offline, capsys, flag):
    argv = DATAFLOW + JOB
    argv[argv.index(flag) + 1] = "data/somewhere_local"
    assert main(argv) == 2
    assert offline == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} 'data/somewhere_local' is a local path" in err[0]


@pytest.mark.parametrize("input_format", ["tfrecord", "parquet"])
@pytest.mark.slow
def test_shard_job_builds_offline_and_shuffles_no_image_bytes(offline, input_format):
    """Shard readers list nothing on the launcher, and their only shuffles carry shard names,
    byte ranges or keys: image bytes go from the reader straight into decoding."""
    result = run(
        DATAFLOW
        + [
            "--input_format",
            input_format,
            "--model",
            f"{BUCKET}/models/mobilenet_v2.keras",
            "--input",
            f"{BUCKET}/shards/*",
            "--output",
            f"{BUCKET}/out",
        ]
    )

    assert offline == []
    transforms = _transforms(result)
    for stage in (
        "ReadImages/MatchInputs/MatchPatterns",
        "ReadImages/ReadKeys",
        "ReadImages/ReadRecords",
    ):
        assert stage in transforms, f"{stage} missing from the Dataflow job"
    reader_shuffles = {
        name.split("/")[1]
        for name, t in transforms.items()
        if t.spec.urn == common_urns.primitives.GROUP_BY_KEY.urn and name.startswith("ReadImages/")
    }
    # Distinct shard names, the keys pass's counts and per-key combine (it reads where the
    # distinct names are, without a shuffle of its own), and for Parquet the reshuffle of byte
    # ranges that spreads a large shard's row groups (a TFRecord shard is one range).
    expected = {"DeduplicateShards", "CountRecords", "CountPerKey"}
    assert reader_shuffles == expected | ({"Reshard"} if input_format == "parquet" else set())
