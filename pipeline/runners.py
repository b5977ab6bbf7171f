"""Which runner a job runs on, and whether its workers can read this machine's local paths.

``DirectRunner`` (Beam's default) would run the job on Prism whenever it can get the binary,
downloading it at run time, and fall back to the in-process FnApiRunner when that fails: which
runner a job met would depend on the network and a cache. Here ``DirectRunner`` always means the
in-process runner (``in_process_runner``); Prism is ``--runner PrismRunner`` (docs/runners.md).

Local paths reach the workers (``workers_read_local_paths``) when the SDK workers, which run every
stage of the job, run on this machine: an in-process runner; a portable runner (Prism, Flink,
Spark, a job service) with LOOPBACK workers, which run in this process; or a runner that runs
here (Prism; Flink or Spark with a local master; a job service on a loopback address) with
PROCESS workers or EXTERNAL ones on a loopback address. DOCKER workers do not see the host's
files, and anything else (Dataflow, a remote cluster) runs elsewhere.
"""

from __future__ import annotations

import importlib
import re
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions,
    PipelineOptions,
    PortableOptions,
    SparkRunnerOptions,
    StandardOptions,
)
from apache_beam.runners.portability.flink_runner import MAGIC_HOST_NAMES
from apache_beam.runners.portability.spark_runner import LOCAL_MASTER_PATTERN

# Python's own runners: every stage runs in this process or in worker processes it starts.
IN_PROCESS_RUNNERS = frozenset(
    {"DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner", "FnApiRunner"}
)
# Beam's default runner, which this job runs in-process (see the module docstring).
_DIRECT = (None, "DirectRunner", "SwitchingDirectRunner")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def runner_name(options: PipelineOptions) -> str | None:
    """``--runner`` as given, without a module path (None when absent)."""
    runner = options.view_as(StandardOptions).runner
    return runner.rsplit(".", 1)[-1] if isinstance(runner, str) else runner


def in_process_runner(options: PipelineOptions):
    """The runner instance for ``beam.Pipeline(runner=...)``: Beam's in-process FnApiRunner for
    DirectRunner (or no --runner), with the options its workers read, as DirectRunner builds it;
    None for any other runner (Beam resolves --runner itself)."""
    if runner_name(options) not in _DIRECT:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(info))


def is_in_process(options: PipelineOptions) -> bool:
    """Whether the runner is one of Python's own in-process runners (or, named by its dotted
    path, a subclass of one), whose workers run in this process or processes it starts."""
    runner = runner_name(options)
    if runner is None or runner in IN_PROCESS_RUNNERS:
        return True
    return _is_in_process_class(options.view_as(StandardOptions).runner)


def _is_in_process_class(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    if not module:
        return False
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    try:
        runner = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False  # Beam says what is wrong with it when the job starts
    return isinstance(runner, type) and issubclass(runner, (FnApiRunner, SwitchingDirectRunner))


def _is_loopback_address(address: str | None) -> bool:
    """``localhost:P``, ``127.0.0.1:P``, ``[::1]:P``, with or without a scheme or port."""
    if not address:
        return False
    try:
        host = urlsplit(address if "://" in address else "//" + address).hostname
    except ValueError:
        return False
    return host in _LOOPBACK_HOSTS


def _runs_here(options: PipelineOptions, runner: str) -> bool:
    """Whether a portable runner's own workers (task managers, executors) are on this machine."""
    endpoint = options.view_as(PortableOptions).job_endpoint
    if endpoint and endpoint != "embed" and not _is_loopback_address(endpoint):
        return False  # a job service elsewhere runs the job on its own machines
    if runner == "PrismRunner":
        return True
    if runner == "FlinkRunner":
        return options.view_as(FlinkRunnerOptions).flink_master.strip() in MAGIC_HOST_NAMES
    if runner == "SparkRunner":
        master = options.view_as(SparkRunnerOptions).spark_master_url
        return bool(re.match(LOCAL_MASTER_PATTERN, master))
    return runner == "PortableRunner" and bool(endpoint)


def _environment_type(options: PipelineOptions, runner: str) -> str:
    """The SDK workers' environment as the runner will choose it: Prism and a local Flink or
    Spark master default to LOOPBACK, other portable runners to DOCKER."""
    portable = options.view_as(PortableOptions)
    if portable.environment_type:
        return portable.environment_type.upper()
    if runner == "PrismRunner" or (
        runner in ("FlinkRunner", "SparkRunner") and _runs_here(options, runner)
    ):
        return "LOOPBACK"
    return "DOCKER"


def workers_read_local_paths(options: PipelineOptions) -> bool:
    """Whether the job's workers run on this machine, so that they read its local paths."""
    runner = runner_name(options)
    if is_in_process(options):
        return True
    if runner not in ("PrismRunner", "FlinkRunner", "SparkRunner", "PortableRunner"):
        return False  # Dataflow, or a runner this job does not know
    environment = _environment_type(options, runner)
    if environment == "LOOPBACK":
        return True  # the workers are threads of this very process
    if not _runs_here(options, runner):
        return False
    if environment == "PROCESS":
        return True
    config = options.view_as(PortableOptions).environment_config
    return environment == "EXTERNAL" and _is_loopback_address(config)
