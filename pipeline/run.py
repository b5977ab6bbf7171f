"""The scoring job: ``python -m pipeline.run`` (installed as ``batch-score``).

``build_pipeline`` adds one stage per ``transforms`` module (named in brackets), in order::

    ReadImages [read], or ReadTFRecordImages / ReadParquetImages [read_shards]
      |    also: matched (distinct inputs, a singleton side input), errors -------+
      |    with --skip_existing, SkipExisting [skip_existing] inside: keys        |
      |    already scored are skipped before their bytes are read                 |
      v                                                                           |
    Preprocess [preprocess_stage]         sample decided by key and matched ---> errors
      v                                                                           |
    Score[bs=B] [scoring] --------------------------------------------------> errors
      |-> FormatPredictions [format_predictions] -> WritePredictions [write]      |
      |                            MergeErrors -> WriteErrors [write] <-----------+
      |   only with --reconcile_fraction > 0:
      |-> ServingReference [serving]      only with --serving_model ---+
      |-> PillowReference [pillow_reference]  --decode_reference pillow -+
      +-> Reconcile [reconcile], with matched <------------------------+
            -> WriteReconciliation [write]: elements, summary.json, report.html
    CountOutcomes [run_counts]: the readers' counts, scored, errors, comparisons -> counts.json

Bad arguments and unusable inputs stop here, before any work, with exit status 2 and one line.
After the run, ``run.json`` records the accounting (every matched input is a prediction or an
error), the options, the model digest, package versions, the environment and throughput. Its
counts are the job's own (``counts.json``, counted from the data), never the runner's metrics.
"""

from __future__ import annotations

import sys

from pipeline import cli

if __name__ == "__main__":
    # --help answers, and a bad command line is refused, from pipeline.cli's tables before Beam
    # and TensorFlow are imported below.
    cli.exit_on_help(cli.RUN, sys.argv[1:])
    cli.exit_on_early_refusal(cli.RUN, sys.argv[1:], "batch-score")
cli.import_tensorflow_quietly()

import contextlib
import dataclasses
import logging
import os
import posixpath
import signal
import threading
import time
import uuid
from importlib import metadata

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TestOptions,
)

from pipeline import disk_full, failure, outputs, runners
from pipeline.credentials import check_gcs_credentials
from pipeline.environment import environment
from pipeline.options import JobConfig, UsageError, parse_args
from transforms.core.common import (
    ERRORS,
    METRICS_NAMESPACE,
    is_local,
    local_path,
    parse_manifest_line,
)
from transforms.core.inspect_model import MODEL_CALL_FAILED
from transforms.core.model_facts import ModelFacts, labels_from_file, model_facts
from transforms.core.model_reading import (
    ModelLoadError,
    is_bundle,
    load_image_model,
    make_deterministic,
)
from transforms.core.reconciliation_summary import SummarySettings
from transforms.core.shard_records import parquet_layout
from transforms.io.read_predictions import RunReadError
from transforms.score.format_predictions import FormatPredictions
from transforms.score.model_sharing import ModelConfig
from transforms.score.pillow_reference import PillowReference
from transforms.score.preprocess_images import Preprocess
from transforms.score.progress import ProgressHook, show_progress
from transforms.score.read_files import ReadImages
from transforms.score.read_shards import ReadParquetImages, ReadTFRecordImages
from transforms.score.reconcile import Reconcile
from transforms.score.run_counts import COUNTS_JSON, SINGLETON_COUNTS, CountOutcomes, read_counts
from transforms.score.scoring import ImageModelHandler, Score
from transforms.score.serving_reference import ServingReference
from transforms.score.skip_existing import SkipExisting, digest_notes
from transforms.score.write import WriteErrors, WritePredictions, WriteReconciliation

PACKAGES = ("tensorflow", "keras", "apache-beam", "tfx-bsl", "numpy", "pillow")


def _run_info(config: JobConfig, facts: ModelFacts) -> dict:
    """What the reconciliation report names the run by, known when the job is built."""
    return {
        "model": config.model,
        "model_digest": facts.digest,
        "model_kind": facts.kind,
        "model_output": facts.output_key,
        "inputs": list(config.inputs) or [config.input_manifest],
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "package_versions": {name: metadata.version(name) for name in PACKAGES},
        "environment": {"python": sys.version.split()[0], "cpu_count": os.cpu_count()},
        "options": {
            "batch_size": config.batch_size,
            "pad_batches": config.pad_batches,
            "reconcile_fraction": config.reconcile_fraction,
            "reconcile_min": config.reconcile_min,
            "atol": config.atol,
            "rtol": config.rtol,
            "sweep_batch_sizes": list(config.sweep_batch_sizes),
            "serving_model": config.serving_model,
            "decode_reference": config.decode_reference,
            "preprocessing": facts.spec.to_json(),
            "input_dtype": facts.input_dtype,
        },
        "labels": list(facts.labels) if facts.labels else None,
    }


def image_reader(
    config: JobConfig,
    progress: ProgressHook | None = None,
    skip: SkipExisting | None = None,
) -> beam.PTransform:
    """The reader of ``--input_format``: each emits (key, bytes) or (key, (bytes, uri)) as
    ``images``, error records as ``errors`` and the count of distinct inputs as ``matched``;
    inputs ``skip`` finds scored are counted as skipped, before their bytes are read."""
    if config.input_format == "tfrecord":
        return ReadTFRecordImages(
            config.inputs,
            config.input_manifest,
            config.image_feature,
            config.key_features,
            progress,
            skip,
            max_record_bytes=config.max_file_bytes,
        )
    if config.input_format == "parquet":
        return ReadParquetImages(
            config.inputs,
            config.input_manifest,
            config.image_column,
            config.key_column,
            progress,
            skip,
        )
    return ReadImages(
        config.inputs,
        config.input_manifest,
        config.max_file_bytes,
        progress,
        skip,
        config.batch_size,
    )


def job_model_config(config: JobConfig) -> ModelConfig:
    """The job's model handle: one per job, held by every stage that scores."""
    return ModelConfig(
        config.model,
        config.image_size,
        config.normalization,
        config.deterministic,
        config.output_key,
        config.model_copies,
    )


def build_pipeline(
    pipeline: beam.Pipeline,
    config: JobConfig,
    progress: ProgressHook | None = None,
    facts: ModelFacts | None = None,
    model_config: ModelConfig | None = None,
    run_id: str = "",
) -> None:
    """Adds the whole job to ``pipeline``; stages report to ``progress`` if given, and its
    counts record (``counts.json``) names the run ``run_id``.

    The model is read once (by the launcher's preflight, which passes its ``facts`` and its
    ``model_config``, whose loaded instance an in-process runner reuses, or here): its
    preprocessing, labels, digest and warnings reach the stages as values.
    A dry run must not read files, so it builds the job around placeholder facts.
    """
    model_config = model_config or job_model_config(config)
    if pipeline.options.view_as(TestOptions).dry_run:
        facts = ModelFacts.placeholder()
    elif facts is None:
        try:
            facts = model_facts(
                model_config.process_model(),
                config.image_size,
                config.normalization,
                config.labels_file,
            )
        except ModelLoadError as e:
            raise UsageError(f"--model: {e}") from None
    skip = (
        SkipExisting(config.skip_existing, facts.digest, progress) if config.skip_existing else None
    )
    read = pipeline | "ReadImages" >> image_reader(config, progress, skip)
    images = read["images"]
    preprocessed = images | "Preprocess" >> Preprocess(
        facts.spec,
        config.max_image_pixels,
        lookahead=config.batch_size,
        sample_fraction=config.reconcile_fraction,
        sample_min=config.reconcile_min,
        matched=read["matched"],
        skipped=read.get("skipped"),
    )
    handler = ImageModelHandler(model_config, config.batch_size, config.pad_batches)
    scored = preprocessed.images | f"Score[bs={config.batch_size}]" >> Score(handler, progress)
    # PredictionLog records carry the full score vector whatever --write_scores says.
    with_scores = config.write_scores or config.output_format == "tfrecord"
    (
        scored.scored
        | "FormatPredictions"
        >> FormatPredictions(facts.labels, facts.digest, config.top_k, with_scores)
        | "WritePredictions"
        >> WritePredictions(config.output, config.output_format, config.num_shards)
    )
    errors = (read[ERRORS], preprocessed[ERRORS], scored[ERRORS]) | "MergeErrors" >> beam.Flatten()
    errors | "WriteErrors" >> WriteErrors(config.output, config.num_shards, progress)
    # The readers' own counts (matched; with --skip_existing, skipped and unreadable lines).
    outcomes = {name: read[name] for name in SINGLETON_COUNTS if name in read}
    outcomes |= {"scored": scored.scored, "errors": errors}
    if config.reconcile_fraction > 0:
        references = []
        if config.serving_model:
            references.append(
                scored.scored
                | "ServingReference"
                >> ServingReference(
                    config.serving_model,
                    facts.spec,
                    config.atol,
                    config.rtol,
                    config.deterministic,
                    model_config,
                    config.batch_size,
                    config.pad_batches,
                )
            )
        if config.decode_reference == "pillow":
            pad_size = config.batch_size if config.pad_batches else None
            references.append(
                scored.scored
                | "PillowReference"
                >> PillowReference(model_config, facts.spec, pad_size, config.atol, config.rtol)
            )
        extra = None
        if references:
            extra = (
                references[0]
                if len(references) == 1
                else tuple(references) | "MergeOtherReferences" >> beam.Flatten()
            )
        settings = SummarySettings(
            atol=config.atol,
            rtol=config.rtol,
            fraction=config.reconcile_fraction,
            batch_size=config.batch_size,
            reconcile_min=config.reconcile_min,
            model_warnings=facts.warnings,
        )
        reconciled = scored.scored | "Reconcile" >> Reconcile(
            model_config,
            config.pad_batches,
            config.sweep_batch_sizes,
            settings,
            matched=read["matched"],
            extra_elements=extra,
            skipped=read.get("skipped"),
        )
        outcomes["comparisons"] = reconciled["elements"]
        reconciled |= {"matched": read["matched"], "errors": errors}
        reconciled | "WriteReconciliation" >> WriteReconciliation(
            config.output, _run_info(config, facts), config.num_shards
        )
    outcomes | "CountOutcomes" >> CountOutcomes(config.output, run_id)


def check_paths_reach_workers(config: JobConfig, options: PipelineOptions) -> None:
    """Refuses local paths that the runner's workers cannot read (``pipeline.runners``)."""
    named = [("--model", config.model), ("--output", config.output)]
    named += [("--input", pattern) for pattern in config.inputs]
    named += [
        ("--input_manifest", config.input_manifest),
        ("--serving_model", config.serving_model),
    ]
    runners.check_paths_reach_workers(options, named, config.workers_share_filesystem)


def preflight(config: JobConfig) -> dict:
    """Checks inputs, model and output before any work; returns facts for run.json.

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
    if config.input_manifest and not config.inputs and not _manifest_lists_a_uri(config):
        raise UsageError(
            f"--input_manifest {config.input_manifest!r} lists no image URIs (only blank lines "
            "or # comments); nothing to score"
        )
    if config.model == cli.default_model() and not FileSystems.exists(config.model):
        raise UsageError(
            f"no --model given, and the default model (the demo bundle, {config.model}) is not "
            "built: build it with `python -m pipeline.demo`, or pass --model"
        )
    model_config = job_model_config(config)
    try:
        # The job's per-process instance: when the runner executes in this process (the
        # DirectRunner), the DoFns acquire this very model instead of loading it a second time.
        model = model_config.process_model()
        # Read (and the model called once) before anything is written: a model that fails
        # there is a warning or a refusal, never a traceback over a half-made output.
        job_facts = model_facts(model, config.image_size, config.normalization)
    except ModelLoadError as e:
        raise UsageError(f"--model: {e}") from None
    check_batch_memory(config, job_facts.spec.image_size)
    if config.labels_file:
        try:
            labels = labels_from_file(config.labels_file, model)
        except ModelLoadError as e:
            raise UsageError(str(e)) from None
        job_facts = dataclasses.replace(job_facts, labels=labels)
    if config.serving_model and not is_bundle(config.serving_model):
        raise UsageError(
            f"--serving_model {config.serving_model!r} is not a model bundle; export one with "
            "python -m pipeline.export"
        )
    if config.serving_model:
        _check_serving_classes(config, model.num_classes)
    outputs.check_output(config.output, config.overwrite)
    try:
        notes = digest_notes(config.skip_existing, model.digest)
    except RunReadError as e:
        raise UsageError(f"--skip_existing {e}") from None
    for note in notes:
        print(note, file=sys.stderr)
    # "loaded_model" and "model_config" are not written to run.json: run() holds the model until
    # the job ends, because Shared keeps only a weak reference and an in-process runner
    # acquires it later, through the same model_config.
    return {
        "model_digest": model.digest,
        "model_kind": model.kind,
        "preprocessing": job_facts.spec,
        "model_facts": job_facts,
        "loaded_model": model,
        "model_config": model_config,
        "skip_existing_notes": notes,
    }


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


def _check_serving_classes(config: JobConfig, classes: int | None) -> None:
    """The serving bundle must score the same classes, or every comparison is meaningless
    (and the first one fails on the shapes)."""
    try:
        serving = load_image_model(config.serving_model)
    except ModelLoadError as e:
        raise UsageError(f"--serving_model: {e}") from None
    if None not in (classes, serving.num_classes) and serving.num_classes != classes:
        raise UsageError(
            f"--serving_model {config.serving_model!r} scores {serving.num_classes} classes and "
            f"--model {classes}; compare a bundle of the same model"
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


def _manifest_lists_a_uri(config: JobConfig) -> bool:
    return _first_manifest_uri(config) is not None


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


def _model_loads(result) -> int | None:
    """The ``model_loads`` metric as the runner reports it (committed, else attempted), or None
    where it reports none of the job's metrics: a metric, not data (the job cannot count its
    own loads), so a runner's silence must not read as 0."""
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except NotImplementedError:  # a runner without metrics (PipelineResult's default)
        return None
    loads = [
        c.committed if c.committed is not None else c.attempted
        for c in counters["counters"]
        if c.key.metric.name == "model_loads"
    ]
    if not counters["counters"] or None in loads:
        return None
    return sum(loads)


def _thread_settings() -> dict:
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def run_record(
    config: JobConfig,
    options: PipelineOptions,
    facts: dict,
    counts: dict | None,
    wall,
    written: list[str] | None = None,
    model_loads: int | None = None,
) -> dict:
    """The run.json record of a finished run: accounting, options, model, versions,
    throughput, and ``outputs``, the files it wrote (all that --overwrite may remove).

    ``counts`` is the job's counts record (``transforms.score.run_counts``), or None where it is
    missing: then every count is null and the run is not accounted, never zeros that add up.
    """
    counts = counts or {}
    matched, scored = counts.get("matched"), counts.get("scored")
    errors, skipped = counts.get("errors"), counts.get("skipped")
    accounted = None not in (matched, scored, errors, skipped) and (
        matched == scored + errors + skipped
    )
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return {
        "job": outputs.JOB,
        "status": "complete",
        "outputs": written or [],
        "matched": matched,
        "scored": scored,
        "errors": errors,
        "errors_by_reason": counts.get("errors_by_reason"),
        "non_finite_scores": counts.get("non_finite_scores"),
        "exif_oriented": counts.get("exif_oriented"),
        "reconciled": counts.get("reconciled"),
        "model_loads": model_loads,
        "skipped": skipped,
        "skip_existing_notes": facts.get("skip_existing_notes", []),
        "skip_existing_unreadable_lines": counts.get("skip_existing_unreadable_lines"),
        "accounted": accounted,
        "options": dataclasses.asdict(config),
        "working_dir": os.getcwd(),
        # runner and threads repeat part of environment: they were in run.json before it, and
        # the record's documented fields (docs/contract.md) keep them for existing readers.
        "runner": runner,
        "model": config.model,
        "model_digest": facts.get("model_digest"),
        "model_kind": facts.get("model_kind"),
        "model_output": facts["model_facts"].output_key if "model_facts" in facts else None,
        "preprocessing": dataclasses.asdict(facts["preprocessing"])
        if "preprocessing" in facts
        else None,
        "package_versions": {name: metadata.version(name) for name in PACKAGES},
        "threads": _thread_settings(),
        "environment": environment(runner),
        "wall_seconds": round(wall, 3),
        "images_per_second": round(scored / wall, 3) if scored is not None and wall > 0 else None,
    }


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run: exit status 130, one line, outputs incomplete."""

    def __init__(self, output: str):
        super().__init__(f"interrupted; outputs in {output} are incomplete")


@contextlib.contextmanager
def interruptible(output: str):
    """SIGINT and SIGTERM (what schedulers send) become ``Interrupted``.

    Beam re-raises a failure inside a transform as a RuntimeError naming the step, so the
    signal is remembered here rather than recognised by the exception's type.
    """
    received = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    # Signal handlers can be installed only from the main thread (a test may run elsewhere).
    signals = (signal.SIGINT, signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    previous = [signal.signal(signum, interrupt) for signum in signals] if in_main else []
    # Once interrupted, Beam logs the KeyboardInterrupt of every step it unwinds, with its
    # traceback: the user asked to stop, and gets one line instead.
    handlers = [h for h in (*logging.getLogger().handlers, logging.lastResort) if h is not None]

    def mute(record: logging.LogRecord) -> bool:
        return not received

    # The signal can land inside a finaliser or a callback, where Python prints "Exception
    # ignored in ..." with a traceback instead of raising it: muted too, once interrupted.
    unraisable = sys.unraisablehook

    def ignore_once_interrupted(info) -> None:
        if not received:
            unraisable(info)

    sys.unraisablehook = ignore_once_interrupted
    for handler in handlers:
        handler.addFilter(mute)
    try:
        yield
    except BaseException as e:
        if received or isinstance(e, KeyboardInterrupt):
            raise Interrupted(output) from None
        raise
    finally:
        sys.unraisablehook = unraisable
        for handler in handlers:
            handler.removeFilter(mute)
        for signum, handler in zip(signals, previous, strict=False):
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def run(argv=None, save_main_session=True):
    """Runs the job; returns the PipelineResult (waits for it to finish).

    ``OUTPUT/run.json`` says ``"status": "incomplete"`` from before the first output is
    written until the complete record replaces it at the end.

    Raises:
      UsageError: bad arguments or unusable model/input/output (nothing written).
      Interrupted: SIGINT or SIGTERM; the outputs are incomplete (and run.json says so).
    """
    options, config = parse_args(sys.argv[1:] if argv is None else argv)
    return run_job(options, config, save_main_session)


def run_job(options: PipelineOptions, config: JobConfig, save_main_session=True, stream=None):
    """Runs the job of already parsed options (``pipeline.options.parse_args``).

    Args:
      stream: where a local run draws its progress line, if it is a terminal (default stderr).

    Raises:
      UsageError, Interrupted: as ``run``.
    """
    start, started = time.time(), time.monotonic()
    with interruptible(config.output), contextlib.ExitStack() as owned:
        check_paths_reach_workers(config, options)
        if config.deterministic:
            # Before preflight's load: this process loads the model as every worker does.
            make_deterministic()
        runner = runners.runner_name(options)
        if runners.workers_read_local_paths(options) and options.view_as(GoogleCloudOptions).labels:
            # A user's labels.txt given as --labels would otherwise vanish without a word.
            print(
                "note: --labels is Beam's Dataflow job-labels flag (key=value), which "
                f"{runner or 'DirectRunner'} ignores; a plain model's class names go in "
                "--labels_file FILE (one label a line)",
                file=sys.stderr,
            )
        # A dry run (job construction only, e.g. for Dataflow) must not touch files or gs://.
        dry_run = options.view_as(TestOptions).dry_run
        facts = {} if dry_run else preflight(config)
        options.view_as(SetupOptions).save_main_session = save_main_session
        run_id = uuid.uuid4().hex
        run_json = posixpath.join(config.output, outputs.RUN_JSON)
        if not dry_run:
            # Exclusive until the complete run.json is written: a second job is refused.
            owned.enter_context(outputs.hold_output(config.output))
            outputs.prepare_output(
                config.output, config.overwrite, _incomplete_record(config, facts)
            )
            before = outputs.our_files(config.output)
            if facts and facts["model_kind"] != "bundle" and config.normalization is None:
                # Said out loud (once every check has passed): a plain model that expected other
                # pixels would otherwise score garbage quietly.
                spec = facts["preprocessing"]
                print(
                    f"note: {config.model} is a plain model (not a bundle): preprocessing "
                    f"--normalization {spec.normalization} (the default) at {spec.image_size[0]}x"
                    f"{spec.image_size[1]}; pass --normalization to change it",
                    file=sys.stderr,
                )
            if config.output_key:
                print(
                    f"note: scoring output {config.output_key!r} of {config.model} (--output_key)",
                    file=sys.stderr,
                )
            for warning in facts["model_facts"].warnings:
                if warning["kind"] == MODEL_CALL_FAILED:
                    print(f"warning: {config.model}: {warning['message']}", file=sys.stderr)
        # Only an in-process runner reports to this process; a portable or distributed job's
        # counts are in its runner's UI.
        stream = sys.stderr if stream is None else stream
        local = not dry_run and runners.is_in_process(options)
        with show_progress(stream, started, enabled=local) as progress:
            pipeline = beam.Pipeline(runner=runners.in_process_runner(options), options=options)
            build_pipeline(
                pipeline,
                config,
                progress,
                facts.get("model_facts"),
                facts.get("model_config"),
                run_id,
            )
            if local:
                result = pipeline.run()
            else:
                # Staging runs child processes that write to stderr (Beam tries `python -m
                # build` before `setup.py sdist`: "No module named build"); kept for
                # --log_level debug, and shown if staging fails.
                with cli.captured_stderr(replay=config.log_level == "debug"):
                    result = pipeline.run()
            result.wait_until_finish()
        if not dry_run:
            written = outputs.written_files(config.output, before)
            counts = read_counts(config.output, run_id)
            record = run_record(
                config, options, facts, counts, time.time() - start, written, _model_loads(result)
            )
            # Without counts there is nothing to judge the run by: it is "not accounted".
            record["failure"] = (
                failure.of_run(record, config.output, config.input_format, config.max_error_rate)
                if counts is not None
                else None
            )
            outputs.write_json(run_json, record)
    return result


def _incomplete_record(config: JobConfig, facts: dict) -> dict:
    """run.json while the job runs: what an interrupted run leaves, never mistaken for done."""
    return {
        "job": outputs.JOB,
        "status": "incomplete",
        "options": dataclasses.asdict(config),
        "model": config.model,
        "model_digest": facts.get("model_digest"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _format_diff(value: float | None) -> str:
    return "non-finite" if value is None else f"{value:.3g}"


def _print_summary(config: JobConfig) -> int:
    """Prints what a user wants to see after a run; returns the exit status."""
    record = outputs.read_json(posixpath.join(config.output, "run.json"))
    if record["matched"] is None:
        print(
            f"not accounted: the job wrote no counts record "
            f"({posixpath.join(config.output, COUNTS_JSON)}), so what it scored is unknown; "
            f"finished in {record['wall_seconds']:.1f} s"
        )
    else:
        print(
            f"scored {record['scored']:,} images, {record['errors']:,} errors, "
            f"{record.get('non_finite_scores', 0):,} with non-finite scores "
            f"(matched {record['matched']:,}, accounted: {str(record['accounted']).lower()}), "
            f"{record['images_per_second']:,.1f} images/s over {record['wall_seconds']:.1f} s"
        )
    if record.get("skipped"):
        print(f"skipped {record['skipped']:,} images already scored (--skip_existing)")
    if record.get("skip_existing_unreadable_lines"):
        print(
            f"note: {record['skip_existing_unreadable_lines']:,} line(s) of the --skip_existing "
            "runs' predictions hold no readable record (cut off or not JSON); their keys, if "
            "any, were scored again"
        )
    print(f"predictions: {posixpath.join(config.output, 'predictions')}/")
    # Errors by reason, most frequent first: "3 unsupported_format" says more than "3 errors".
    by_reason = sorted((record.get("errors_by_reason") or {}).items(), key=lambda kv: -kv[1])
    reasons = ", ".join(f"{count:,} {reason}" for reason, count in by_reason)
    errors_dir = posixpath.join(config.output, "errors")
    print(f"errors:      {errors_dir}/" + (f" ({reasons})" if reasons else ""))
    status = 0
    summary_path = posixpath.join(config.output, "reconciliation", "summary.json")
    if config.reconcile_fraction > 0 and FileSystems.exists(summary_path):
        summary = outputs.read_json(summary_path)
        print(f"reconciliation: {summary['guarantee']}")
        for cause in summary["diagnosis"]:
            print(f"  {cause['cause']}: {cause['evidence']}")
        for warning in summary.get("model_warnings", []):
            print(f"  model warning ({warning['kind']}, {warning['where']}): {warning['message']}")
        print(f"report:      {posixpath.join(config.output, 'reconciliation', 'report.html')}")
        # inconclusive is no evidence of agreement: a gate must not let it through.
        if summary["verdict"] != "pass" and config.fail_on_mismatch:
            status = cli.EXIT_MISMATCH
    if record.get("failure"):
        # Outputs are complete, but a run that scored nothing (or too little) must not pass.
        print(f"batch-score: failed: {failure.describe(record['failure'])}", file=sys.stderr)
        status = cli.EXIT_FAILED_RUN
    return status


def main(argv=None) -> int:
    """The command line: runs the job and prints its summary; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if cli.wants_help(argv):
        cli.parser_for(cli.RUN).print_help()
        return cli.EXIT_OK
    cli.configure_logging()
    try:
        options, config = parse_args(argv)
        cli.configure_logging(config.log_level)
        with disk_full.quiet_when_disk_full():
            result = run_job(options, config)
    except UsageError as e:
        print(f"batch-score: error: {e}", file=sys.stderr)
        return cli.EXIT_USAGE
    except Interrupted as e:
        print(f"batch-score: {e}", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    except Exception as e:
        if not disk_full.is_disk_full(e):
            raise
        return disk_full.report(
            "batch-score",
            config.output,
            "the run is incomplete (run.json says so): free space, then rerun with --overwrite",
        )
    except KeyboardInterrupt:
        # Before the job started (while parsing or importing): nothing was written yet.
        print("batch-score: interrupted", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    if result is None or options.view_as(TestOptions).dry_run:
        print("dry run: the job was built and validated; nothing was run")
        return cli.EXIT_OK
    return _print_summary(config)


if __name__ == "__main__":
    sys.exit(disk_full.exit_status("batch-score", main))
