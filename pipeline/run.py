"""The scoring job: ``python -m pipeline.run`` (installed as ``batch-score``).

    ReadImages -> Preprocess -> Score[bs=B] -> FormatPredictions -> WritePredictions
                      |            |     \\-> Reconcile -> elements, summary.json, report.html
                      +------------+-> errors (dead letters)

Bad arguments and unusable inputs stop here, before any work, with exit status 2 and one line.
After the run, ``run.json`` records the accounting (every matched input is a prediction or an
error), the options, the model digest, package versions and throughput.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import sys
import time
from importlib import metadata

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TestOptions,
)

from pipeline import outputs, quiet_logs
from pipeline.environment import environment
from pipeline.options import JobConfig, UsageError
from transforms.common import ERRORS, METRICS_NAMESPACE, is_local
from transforms.model import (
    ModelConfig,
    ModelLoadError,
    is_bundle,
    resolve_spec,
    shared_model,
)
from transforms.preprocess_stage import Preprocess
from transforms.read import ReadImages
from transforms.read_predictions import RunReadError
from transforms.reconcile import Reconcile
from transforms.scoring import ImageModelHandler, Score
from transforms.serving import ServingReference
from transforms.skip_existing import SkipExisting, digest_notes
from transforms.write import (
    FormatPredictions,
    WriteErrors,
    WritePredictions,
    WriteReconciliation,
)

PACKAGES = ("tensorflow", "keras", "apache-beam", "tfx-bsl", "numpy", "pillow")


def build_pipeline(pipeline: beam.Pipeline, config: JobConfig) -> None:
    """Adds the whole job to ``pipeline``."""
    model_config = ModelConfig(
        config.model, config.image_size, config.normalization, config.deterministic
    )
    read = pipeline | "ReadImages" >> ReadImages(config.inputs, config.input_manifest)
    images = read.images
    if config.skip_existing:
        digest = shared_model(config.model).digest
        images = images | "SkipExisting" >> SkipExisting(config.skip_existing, digest)
    # The serving reference scores the raw bytes: sampled elements keep them.
    keep_bytes = config.reconcile_fraction if config.serving_model else 0.0
    preprocessed = images | "Preprocess" >> Preprocess(
        model_config.spec, config.max_image_pixels, keep_bytes, lookahead=config.batch_size
    )
    handler = ImageModelHandler(
        model_config, config.batch_size, config.pad_batches, config.reconcile_fraction
    )
    scored = preprocessed.images | f"Score[bs={config.batch_size}]" >> Score(handler)
    # PredictionLog records carry the full score vector whatever --write_scores says.
    with_scores = config.write_scores or config.output_format == "tfrecord"
    (
        scored.scored
        | "FormatPredictions" >> FormatPredictions(model_config, config.top_k, with_scores)
        | "WritePredictions"
        >> WritePredictions(config.output, config.output_format, config.num_shards)
    )
    (
        (read[ERRORS], preprocessed[ERRORS], scored[ERRORS])
        | "MergeErrors" >> beam.Flatten()
        | "WriteErrors" >> WriteErrors(config.output, config.num_shards)
    )
    if config.reconcile_fraction > 0:
        serving = None
        if config.serving_model:
            serving = scored.scored | "ServingReference" >> ServingReference(
                config.serving_model, model_config.spec, config.atol, config.rtol
            )
        reconciled = scored.scored | "Reconcile" >> Reconcile(
            model_config,
            config.batch_size,
            config.pad_batches,
            config.sweep_batch_sizes,
            config.atol,
            config.rtol,
            config.reconcile_fraction,
            extra_elements=serving,
        )
        reconciled | "WriteReconciliation" >> WriteReconciliation(config.output, config.num_shards)


LOCAL_RUNNERS = (None, "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")


def check_paths_reach_workers(config: JobConfig, runner: str | None) -> None:
    """On a distributed runner, local paths exist only on the launcher: refuse them up front
    (without touching any file), rather than fail on every worker after start-up."""
    if runner in LOCAL_RUNNERS or (runner or "").endswith("DirectRunner"):
        return
    named = [("--model", config.model), ("--output", config.output)]
    named += [("--input", pattern) for pattern in config.inputs]
    named += [
        ("--input_manifest", config.input_manifest),
        ("--serving_model", config.serving_model),
    ]
    for flag, path in named:
        if path and is_local(path):
            raise UsageError(
                f"{flag} {path!r} is a local path, which {runner} workers cannot read; "
                "copy it to shared storage (gs://...) and pass that"
            )


def preflight(config: JobConfig) -> dict:
    """Checks inputs, model and output before any work; returns facts for run.json.

    Raises:
      UsageError: with one line naming the problem and the fix.
    """
    for pattern in config.inputs:
        try:
            found = FileSystems.match([pattern], limits=[1])[0].metadata_list
        except Exception as e:  # noqa: BLE001 - a filesystem error is a usage error here
            raise UsageError(f"--input {pattern!r}: cannot list: {e}") from None
        if not found:
            raise UsageError(f"--input {pattern!r} matched no files; check the path or pattern")
    if config.input_manifest and not FileSystems.exists(config.input_manifest):
        raise UsageError(
            f"--input_manifest {config.input_manifest!r} does not exist; check the path"
        )
    try:
        # The process-wide shared instance: when the runner executes in this process (the
        # DirectRunner), the DoFns acquire this very model instead of loading it a second time.
        model = shared_model(config.model)
        spec = resolve_spec(model, config.image_size, config.normalization)
    except ModelLoadError as e:
        raise UsageError(f"--model: {e}") from None
    if config.serving_model and not is_bundle(config.serving_model):
        raise UsageError(
            f"--serving_model {config.serving_model!r} is not a model bundle; export one with "
            "python -m pipeline.export"
        )
    outputs.check_output(config.output, config.overwrite)
    try:
        notes = digest_notes(config.skip_existing, model.digest)
    except RunReadError as e:
        raise UsageError(f"--skip_existing {e}") from None
    for note in notes:
        print(note, file=sys.stderr)
    # "loaded_model" is not written to run.json: run() holds it until the job ends, because
    # Shared keeps only a weak reference and an in-process runner acquires it later.
    return {
        "model_digest": model.digest,
        "model_kind": model.kind,
        "preprocessing": spec,
        "loaded_model": model,
        "skip_existing_notes": notes,
    }


def _counters(result) -> dict[str, int]:
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    totals: dict[str, int] = {}
    for counter in query["counters"]:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (
            counter.committed or 0
        )
    return totals


def _thread_settings() -> dict:
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def run_record(config: JobConfig, options: PipelineOptions, facts: dict, counters, wall) -> dict:
    """The run.json record: accounting, options, model, versions, throughput."""
    matched, scored = counters.get("matched", 0), counters.get("scored", 0)
    errors, skipped = counters.get("errors", 0), counters.get("skipped", 0)
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return {
        "matched": matched,
        "scored": scored,
        "errors": errors,
        "errors_by_reason": {
            name.split(".", 1)[1]: count
            for name, count in sorted(counters.items())
            if name.startswith("errors.")
        },
        "non_finite_scores": counters.get("non_finite_scores", 0),
        "reconciled": counters.get("reconciled", 0),
        "model_loads": counters.get("model_loads", 0),
        "skipped": skipped,
        "skip_existing_notes": facts.get("skip_existing_notes", []),
        "accounted": matched == scored + errors + skipped,
        "options": dataclasses.asdict(config),
        "runner": runner,
        "model": config.model,
        "model_digest": facts.get("model_digest"),
        "model_kind": facts.get("model_kind"),
        "preprocessing": dataclasses.asdict(facts["preprocessing"])
        if "preprocessing" in facts
        else None,
        "package_versions": {name: metadata.version(name) for name in PACKAGES},
        "threads": _thread_settings(),
        "environment": environment(runner),
        "wall_seconds": round(wall, 3),
        "images_per_second": round(scored / wall, 3) if wall > 0 else None,
    }


def run(argv=None, save_main_session=True):
    """Runs the job; returns the PipelineResult (waits for it to finish).

    Raises:
      UsageError: bad arguments or unusable model/input/output (nothing written).
    """
    start = time.time()
    options = PipelineOptions(argv)
    config = JobConfig.from_options(options)
    check_paths_reach_workers(config, options.view_as(StandardOptions).runner)
    # A dry run (job construction only, e.g. for Dataflow) must not touch files or gs://.
    dry_run = options.view_as(TestOptions).dry_run
    facts = {} if dry_run else preflight(config)
    options.view_as(SetupOptions).save_main_session = save_main_session
    if config.deterministic:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(0)
        tf.config.experimental.enable_op_determinism()
    if not dry_run:
        outputs.prepare_output(config.output, config.overwrite)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    if not dry_run:
        record = run_record(config, options, facts, _counters(result), time.time() - start)
        outputs.write_json(posixpath.join(config.output, "run.json"), record)
    return result


def _format_diff(value: float | None) -> str:
    return "non-finite" if value is None else f"{value:.3g}"


def _print_summary(config: JobConfig) -> int:
    """Prints what a user wants to see after a run; returns the exit status."""
    record = outputs.read_json(posixpath.join(config.output, "run.json"))
    print(
        f"scored {record['scored']:,} images, {record['errors']:,} errors "
        f"(matched {record['matched']:,}, accounted: {str(record['accounted']).lower()}), "
        f"{record['images_per_second']:,.1f} images/s over {record['wall_seconds']:.1f} s"
    )
    if record.get("skipped"):
        print(f"skipped {record['skipped']:,} images already scored (--skip_existing)")
    print(f"predictions: {posixpath.join(config.output, 'predictions')}/")
    print(f"errors:      {posixpath.join(config.output, 'errors')}/")
    status = 0
    summary_path = posixpath.join(config.output, "reconciliation", "summary.json")
    if config.reconcile_fraction > 0 and FileSystems.exists(summary_path):
        summary = outputs.read_json(summary_path)
        print(
            f"reconciliation: {summary['verdict'].upper()}: {summary['compared']} compared, "
            f"{summary['identical']} identical, {summary['within_tolerance']} within tolerance, "
            f"{summary['mismatch']} mismatch (max |diff| {_format_diff(summary['max_abs_diff'])})"
        )
        for cause in summary["diagnosis"]:
            print(f"  {cause['cause']}: {cause['evidence']}")
        print(f"report:      {posixpath.join(config.output, 'reconciliation', 'report.html')}")
        if summary["verdict"] == "fail" and config.fail_on_mismatch:
            status = 3
    return status


def main(argv=None) -> int:
    quiet_logs()
    argv = sys.argv[1:] if argv is None else argv
    try:
        result = run(argv)
    except UsageError as e:
        print(f"batch-score: error: {e}", file=sys.stderr)
        return 2
    config = JobConfig.from_options(PipelineOptions(argv))
    if result is None or PipelineOptions(argv).view_as(TestOptions).dry_run:
        print("dry run: the job was built and validated; nothing was run")
        return 0
    return _print_summary(config)


if __name__ == "__main__":
    sys.exit(main())
