"""The run record, ``OUTPUT/run.json``: while the job runs, an incomplete record that an
interrupted run leaves behind, never mistaken for a finished one; after it, the accounting (from
the job's own counts, ``counts.json``, never the runner's metrics), the options, the model, the
package versions, the environment, the thread settings and throughput. And the run's
description the reconciliation report names it by.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from importlib import metadata

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import outputs
from pipeline.environment import environment
from pipeline.job_config import JobConfig
from transforms.core import metric_names
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.core.model_facts import ModelFacts

PACKAGES = ("tensorflow", "keras", "apache-beam", "tfx-bsl", "numpy", "pillow")


def report_run_info(config: JobConfig, facts: ModelFacts) -> dict:
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


def incomplete_record(config: JobConfig, model_digest: str) -> dict:
    """run.json while the job runs: what an interrupted run leaves, never mistaken for done."""
    return {
        "job": outputs.JOB,
        "status": "incomplete",
        "options": dataclasses.asdict(config),
        "model": config.model,
        "model_digest": model_digest,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def runner_model_loads(result) -> int | None:
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
        if c.key.metric.name == metric_names.MODEL_LOADS
    ]
    if not counters["counters"] or None in loads:
        return None
    return sum(loads)


def thread_settings() -> dict:
    """The CPU count and TensorFlow's thread pools: 1 or 2 intra-op threads can move the
    per-element reference, so the run record says which ran."""
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def run_record(
    config: JobConfig,
    options: PipelineOptions,
    facts: ModelFacts | None,
    counts: dict | None,
    wall,
    written: list[str] | None = None,
    model_loads: int | None = None,
    skip_existing_notes: list[str] | None = None,
) -> dict:
    """The run.json record of a finished run: accounting, options, model, versions,
    throughput, and ``outputs``, the files it wrote (all that --overwrite may remove).

    ``facts`` is the model as the preflight resolved it (None: the model fields are null).

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
        "skip_existing_notes": skip_existing_notes or [],
        "skip_existing_unreadable_lines": counts.get("skip_existing_unreadable_lines"),
        "accounted": accounted,
        "options": dataclasses.asdict(config),
        "working_dir": os.getcwd(),
        # runner and threads repeat part of environment: they were in run.json before it, and
        # the record's documented fields (docs/contract.md) keep them for existing readers.
        "runner": runner,
        "model": config.model,
        "model_digest": facts.digest if facts else None,
        "model_kind": facts.kind if facts else None,
        "model_output": facts.output_key if facts else None,
        "preprocessing": dataclasses.asdict(facts.spec) if facts else None,
        "package_versions": {name: metadata.version(name) for name in PACKAGES},
        "threads": thread_settings(),
        "environment": environment(runner),
        "wall_seconds": round(wall, 3),
        "images_per_second": round(scored / wall, 3) if scored is not None and wall > 0 else None,
    }
