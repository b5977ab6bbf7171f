"""The scoring job's graph: ``build_pipeline`` adds one stage per ``transforms.score`` module,
in the order docs/architecture.md draws them (read, skip, preprocess, sample, score, format and
write; with reconciliation, the serving and Pillow references, reconcile and its sweep; the
job's own counts).

The model's facts are resolved once, by the launcher's preflight (``pipeline.preflight``), and
reach the stages as values; no stage reads the model to find them out.
"""

from __future__ import annotations

import apache_beam as beam

from pipeline.job_config import JobConfig
from transforms.core.model_facts import ModelFacts
from transforms.core.reconciliation_summary import SummarySettings
from transforms.score.format_predictions import FormatPredictions
from transforms.score.model_sharing import ModelConfig
from transforms.score.pillow_reference import PillowReference
from transforms.score.preprocess_images import Preprocess
from transforms.score.progress import ProgressHook
from transforms.score.read_files import ReadImages
from transforms.score.read_shards import ReadParquetImages, ReadTFRecordImages
from transforms.score.reconcile import Reconcile
from transforms.score.run_counts import CountOutcomes, Outcomes
from transforms.score.sample import SampleForReconciliation
from transforms.score.scoring import ImageModelHandler, Score
from transforms.score.serving_reference import ServingReference
from transforms.score.skip_existing import SkipExisting
from transforms.score.write import WriteErrors, WritePredictions, WriteReconciliation


def image_reader(
    config: JobConfig,
    progress: ProgressHook | None = None,
    skip: SkipExisting | None = None,
) -> beam.PTransform:
    """The reader of ``--input_format``: each returns a ``ReadResult``, (key, bytes) or
    (key, (bytes, uri)) as ``images``, error records as ``errors`` and the count of distinct
    inputs as ``matched``; inputs ``skip`` finds scored are counted as skipped, before their
    bytes are read."""
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
    facts: ModelFacts,
    model_config: ModelConfig,
    progress: ProgressHook | None = None,
    run_id: str = "",
) -> None:
    """Adds the whole job to ``pipeline``.

    Args:
      facts: the model's preprocessing, labels, digest and warnings, as the launcher's
        preflight resolved them (``ModelFacts.placeholder()`` for a dry run, which must not
        read files).
      model_config: the job's model handle (``job_model_config``), whose loaded instance an
        in-process runner reuses.
      progress: where stages report, if given.
      run_id: the run the counts record (``counts.json``) names.
    """
    skip = (
        SkipExisting(config.skip_existing, facts.digest, progress) if config.skip_existing else None
    )
    read = pipeline | "ReadImages" >> image_reader(config, progress, skip)
    preprocessed = read.images | "Preprocess" >> Preprocess(
        facts.spec, config.max_image_pixels, lookahead=config.batch_size
    )
    # Right after decoding, while every element still holds its bytes: only the sample keeps
    # them (and its tensor) through scoring, for Reconcile (see transforms/score/sample.py).
    sample = preprocessed.images | "SampleForReconciliation" >> SampleForReconciliation(
        config.reconcile_fraction,
        config.reconcile_min,
        matched=read.matched,
        skipped=read.skipped,
    )
    handler = ImageModelHandler(model_config, config.batch_size, config.pad_batches)
    scored = sample | f"Score[bs={config.batch_size}]" >> Score(handler, progress)
    # PredictionLog records carry the full score vector whatever --write_scores says.
    with_scores = config.write_scores or config.output_format == "tfrecord"
    (
        scored.scored
        | "FormatPredictions"
        >> FormatPredictions(facts.labels, facts.digest, config.top_k, with_scores)
        | "WritePredictions"
        >> WritePredictions(config.output, config.output_format, config.num_shards)
    )
    errors = (read.errors, preprocessed.errors, scored.errors) | "MergeErrors" >> beam.Flatten()
    errors | "WriteErrors" >> WriteErrors(config.output, config.num_shards, progress)
    comparisons = None
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
            matched=read.matched,
            extra_elements=extra,
            skipped=read.skipped,
        )
        comparisons = reconciled.elements
        reconciled | "WriteReconciliation" >> WriteReconciliation(config.output, config.num_shards)
    # The readers' own counts (matched; with --skip_existing, skipped and unreadable lines).
    outcomes = Outcomes(
        scored.scored, errors, read.matched, read.skipped, read.unreadable_lines, comparisons
    )
    pipeline | "CountOutcomes" >> CountOutcomes(outcomes, config.output, run_id)
