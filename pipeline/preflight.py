"""The checks before any work that need no model, each refusal one line naming the problem and
the fix: local paths the runner's workers cannot read (both Beam jobs), and the scoring job's
paths, inputs, manifest, Parquet columns, default model and batch size.

No TensorFlow: the comparison runs these checks without importing it. The scoring job's model
is read once afterwards, by ``pipeline.scoring_preflight``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import runners
from pipeline.credentials import check_gcs_credentials
from pipeline.flags import UsageError, default_model
from pipeline.job_config import JobConfig
from transforms.core.common import is_local, local_path, parse_manifest_line
from transforms.core.shard_records import parquet_layout


def check_paths_reach_workers(
    options: PipelineOptions, paths: Iterable[tuple[str, str | None]], shared: bool = False
) -> None:
    """Refuses a local path the workers cannot read, up front and without touching any file,
    rather than fail on every worker after start-up.

    Args:
      paths: (flag, path) pairs; None or empty paths are skipped.
      shared: --workers_share_filesystem: the user says the workers mount these paths too.

    Raises:
      UsageError: naming the first local path, the runner, and both ways out.
    """
    if shared or runners.workers_read_local_paths(options):
        return
    runner = runners.runner_name(options)
    for flag, path in paths:
        if path and is_local(path):
            raise UsageError(
                f"{flag} {path!r} is a local path, which {runner} workers cannot "
                "read; copy it to shared storage (gs://...) and pass that, or pass "
                "--workers_share_filesystem if every worker mounts it at this path"
            )


def check_scoring_paths_reach_workers(config: JobConfig, options: PipelineOptions) -> None:
    """Refuses a local path of the scoring job that the runner's workers cannot read."""
    named = [("--model", config.model), ("--output", config.output)]
    named += [("--input", pattern) for pattern in config.inputs]
    named += [
        ("--input_manifest", config.input_manifest),
        ("--serving_model", config.serving_model),
    ]
    check_paths_reach_workers(options, named, config.workers_share_filesystem)


def check_scoring_inputs(config: JobConfig) -> None:
    """Checks the scoring job's paths and inputs, before its model is read: credentials for
    ``gs://`` paths, inputs that match nothing, a manifest that is missing or lists nothing,
    Parquet columns that are not there, a default model that is not built.

    Raises:
      UsageError: with one line naming the problem and the fix.
    """
    check_gcs_credentials(_job_paths(config))
    for pattern in config.inputs:
        try:
            found = FileSystems.match([pattern], limits=[1])[0].metadata_list
        except Exception as e:  # noqa: BLE001 - a filesystem error is a usage error here
            raise UsageError(f"--input {pattern!r}: cannot list: {e}") from None
        if not found:
            raise UsageError(f"--input {pattern!r} matched no files; check the path or pattern")
        if config.input_format == "parquet":
            _check_parquet_columns(config, found[0].path)
    if config.input_manifest and not FileSystems.exists(config.input_manifest):
        raise UsageError(
            f"--input_manifest {config.input_manifest!r} does not exist; check the path"
        )
    if config.input_manifest and not config.inputs and _first_manifest_uri(config) is None:
        raise UsageError(
            f"--input_manifest {config.input_manifest!r} lists no image URIs (only blank lines "
            "or # comments); nothing to score"
        )
    if config.model == default_model() and not FileSystems.exists(config.model):
        raise UsageError(
            f"no --model given, and the default model (the demo bundle, {config.model}) is not "
            "built: build it with `python -m pipeline.demo`, or pass --model"
        )


# The most float32 pixels one model call may take (a batch of --batch_size preprocessed images,
# or of a swept size): a larger batch could not be held, and every image would fail.
MAX_BATCH_BYTES = 4 * 1024**3


def check_batch_memory(config: JobConfig, image_size: tuple[int, int]) -> None:
    """Refuses batch sizes whose float32 batch is over ``MAX_BATCH_BYTES``.

    Raises:
      UsageError: one line naming the flag, the batch's size and the bound.
    """
    height, width = image_size
    sizes = [("--batch_size", config.batch_size)]
    sizes += [("--sweep_batch_sizes", size) for size in config.sweep_batch_sizes]
    for flag, size in sizes:
        nbytes = size * height * width * 3 * 4
        if nbytes > MAX_BATCH_BYTES:
            raise UsageError(
                f"{flag} {size:,}: a batch of {height}x{width} images is {nbytes / 1024**3:,.1f} "
                f"GiB of float32 pixels, over the {MAX_BATCH_BYTES // 1024**3} GiB one model call "
                "may take; pass a smaller size"
            )


def _first_manifest_uri(config: JobConfig) -> str | None:
    """The manifest's first URI line, or None; reads only up to it."""
    try:
        with FileSystems.open(
            config.input_manifest, compression_type=CompressionTypes.UNCOMPRESSED
        ) as f:
            return next((uri for uri in map(parse_manifest_line, f) if uri), None)
    except OSError as e:
        raise UsageError(f"--input_manifest {config.input_manifest!r}: cannot read: {e}") from None


def _job_paths(config: JobConfig) -> list[tuple[str, str | None]]:
    """(flag, path) of every path the job reads or writes, a local manifest's first URI too."""
    named = [("--model", config.model), ("--output", config.output)]
    named += [("--input", pattern) for pattern in config.inputs]
    named += [("--input_manifest", config.input_manifest)]
    manifest = config.input_manifest
    if manifest and is_local(manifest) and os.path.isfile(local_path(manifest)):
        named.append(("--input_manifest lists", _first_manifest_uri(config)))
    named += [("--serving_model", config.serving_model)]
    named += [("--skip_existing", run) for run in config.skip_existing]
    return named


def _check_parquet_columns(config: JobConfig, path: str) -> None:
    """The first shard's schema must hold --image_column (and --key_column) as documented."""
    import pyarrow.parquet as pq

    try:
        with FileSystems.open(path) as f:
            schema = pq.ParquetFile(f).schema_arrow
    except Exception:  # noqa: BLE001 - a corrupt shard is the job's error record, not ours
        return
    try:
        layout = parquet_layout(schema, config.image_column, config.key_column)
    except ValueError as e:
        raise UsageError(f"{path}: {e}") from None
    if layout.image_column is None:
        raise UsageError(
            f"--image_column {config.image_column!r} is not a column of {path} "
            f"(columns: {', '.join(schema.names)})"
        )
