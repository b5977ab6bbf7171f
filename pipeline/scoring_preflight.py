"""The scoring job's preflight: ``pipeline.preflight``'s checks, then the model read once, before
anything is written. Its facts (preprocessing, labels, digest, warnings) then reach
``build_pipeline`` as values, and its loaded instance the DoFns of an in-process runner.

Refused here, with one line: a model that cannot be read or contradicts the flags, a batch too
large for one model call, labels or a serving bundle that do not fit the model, an output that
may not be written, an unreadable ``--skip_existing`` run.
"""

from __future__ import annotations

import dataclasses
import sys

from pipeline import outputs
from pipeline.flags import UsageError
from pipeline.graph import job_model_config
from pipeline.job_config import JobConfig
from pipeline.preflight import check_batch_memory, check_scoring_inputs
from transforms.core.model_facts import ModelFacts, labels_from_file, model_facts
from transforms.core.model_reading import ImageModel, ModelLoadError, is_bundle, load_image_model
from transforms.io.read_predictions import RunReadError
from transforms.score.model_sharing import ModelConfig
from transforms.score.skip_existing import digest_notes


@dataclasses.dataclass(frozen=True)
class ScoringPreflight:
    """What the scoring job's preflight found, resolved once on the launcher.

    Attributes:
      facts: the model's preprocessing, labels (``--labels_file``'s included), digest and
        warnings, which ``build_pipeline`` passes to the stages as values.
      model_config: the job's model handle; an in-process runner's DoFns acquire ``model``
        through it instead of loading the model again.
      model: the loaded model, held until the job ends: the handle's ``Shared`` keeps only a
        weak reference to it.
      skip_existing_notes: what ``--skip_existing`` found about the earlier runs (run.json).
    """

    facts: ModelFacts
    model_config: ModelConfig
    model: ImageModel
    skip_existing_notes: list[str]


def check_scoring_job(config: JobConfig) -> ScoringPreflight:
    """Checks inputs, model and output before any work.

    Raises:
      UsageError: with one line naming the problem and the fix.
    """
    check_scoring_inputs(config)
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
    return ScoringPreflight(job_facts, model_config, model, notes)


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
