"""Which runners' workers read this machine's local paths, and the refusal everywhere else."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

from pipeline import preflight, runners
from pipeline.flags import UsageError
from pipeline.run import main

FLINK_LOCAL = ["--runner", "FlinkRunner", "--flink_master", "[local]"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--runner", "DirectRunner"],
        ["--runner", "DirectRunner", "--direct_running_mode", "multi_processing"],
        ["--runner", "BundleBasedDirectRunner"],
        ["--runner", "FnApiRunner"],
        ["--runner", "PrismRunner"],
        [
            "--runner",
            "PrismRunner",
            "--environment_type",
            "EXTERNAL",
            "--environment_config",
            "localhost:50000",
        ],  # fmt: skip
        FLINK_LOCAL,
        ["--runner", "FlinkRunner"],  # [auto], the default master, starts a local cluster
        FLINK_LOCAL + ["--environment_type", "PROCESS", "--environment_config", "{}"],
        FLINK_LOCAL + ["--environment_type", "EXTERNAL", "--environment_config", "[::1]:5"],
        ["--runner", "SparkRunner"],  # local[4], the default master
        [
            "--runner",
            "PortableRunner",
            "--job_endpoint",
            "jobs.example:8099",
            "--environment_type",
            "LOOPBACK",
        ],  # fmt: skip
        [
            "--runner",
            "PortableRunner",
            "--job_endpoint",
            "localhost:8099",
            "--environment_type",
            "EXTERNAL",
            "--environment_config",
            "127.0.0.1:8098",
        ],  # fmt: skip
        [
            "--runner",
            "PortableRunner",
            "--job_endpoint",
            "embed",
            "--environment_type",
            "PROCESS",
        ],  # fmt: skip
    ],
)
def test_workers_on_this_machine_read_local_paths(argv):
    assert runners.workers_read_local_paths(PipelineOptions(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["--runner", "DataflowRunner"],
        ["--runner", "FlinkRunner", "--flink_master", "flink.example:8081"],
        FLINK_LOCAL + ["--environment_type", "DOCKER"],
        FLINK_LOCAL + ["--environment_type", "EXTERNAL", "--environment_config", "10.0.0.5:5"],
        ["--runner", "SparkRunner", "--spark_master_url", "spark://spark.example:7077"],
        ["--runner", "PortableRunner", "--job_endpoint", "localhost:8099"],  # DOCKER by default
        [
            "--runner",
            "PortableRunner",
            "--job_endpoint",
            "jobs.example:8099",
            "--environment_type",
            "EXTERNAL",
            "--environment_config",
            "localhost:50000",
        ],  # fmt: skip
        [
            "--runner",
            "PrismRunner",
            "--job_endpoint",
            "prism.example:8073",
            "--environment_type",
            "PROCESS",
        ],  # fmt: skip
    ],
)
def test_workers_elsewhere_do_not(argv):
    assert not runners.workers_read_local_paths(PipelineOptions(argv))


def test_the_refusal_names_the_path_and_both_ways_out():
    options = PipelineOptions(["--runner", "FlinkRunner", "--flink_master", "flink.example:8081"])
    paths = [("--model", "gs://bucket/model"), ("--output", "out/run1")]
    with pytest.raises(UsageError) as refused:
        preflight.check_paths_reach_workers(options, paths)
    assert str(refused.value) == (
        "--output 'out/run1' is a local path, which FlinkRunner workers cannot read; copy it "
        "to shared storage (gs://...) and pass that, or pass --workers_share_filesystem if "
        "every worker mounts it at this path"
    )
    preflight.check_paths_reach_workers(options, paths, shared=True)
    preflight.check_paths_reach_workers(options, [("--output", "gs://bucket/out")])


@pytest.mark.parametrize("argv", [[], ["--runner", "DirectRunner"]])
def test_direct_runner_runs_in_process_never_on_a_downloaded_prism(argv):
    assert isinstance(runners.in_process_runner(PipelineOptions(argv)), FnApiRunner)


@pytest.mark.parametrize("runner", ["PrismRunner", "FlinkRunner", "BundleBasedDirectRunner"])
def test_other_runners_are_beams_own(runner):
    assert runners.in_process_runner(PipelineOptions(["--runner", runner])) is None


def test_main_refuses_local_paths_for_a_remote_flink_unless_shared(tmp_path, capsys):
    argv = ["--input", f"{tmp_path}/*.png", "--output", str(tmp_path / "out"),
            "--runner", "FlinkRunner", "--flink_master", "flink.example:8081"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a local path, which FlinkRunner workers cannot read" in err[0]
    assert not (tmp_path / "out").exists()
    # With the opt-in, the path checks pass and the job's own preflight speaks next.
    assert main(argv + ["--workers_share_filesystem"]) == 2
    assert "matched no files" in capsys.readouterr().err
