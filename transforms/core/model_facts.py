"""What the job needs to know about its model, read once by the launcher when the job is built.

``model_facts`` turns a loaded ``ImageModel`` and the model flags into ``ModelFacts``
(preprocessing, labels, digest, input dtype, inspection warnings), which the stages get as
values: no stage loads the model to find them out.
"""

from __future__ import annotations

import dataclasses

from transforms.core.common import BUNDLE_LABELS_ASSET
from transforms.core.inspect_model import inspect
from transforms.core.model_reading import ImageModel, ModelLoadError, read_text
from transforms.core.preprocess import INTEGER_INPUTS, PreprocessSpec


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What the job needs to know about its model, resolved once when the job is built and
    passed to the stages as values (no stage loads the model to find them out).

    Attributes:
      spec: the preprocessing the model gets.
      labels: class names, where the model has them.
      digest: the model's content digest.
      input_dtype: the dtype the model takes.
      output_key: the signature output scored (None: a Keras model's only output).
      warnings: what inspecting the model found (``transforms.core.inspect_model``), as records.
    """

    spec: PreprocessSpec
    labels: tuple[str, ...] | None
    digest: str
    kind: str
    input_dtype: str = "float32"
    warnings: tuple[dict, ...] = ()
    output_key: str | None = None

    @classmethod
    def placeholder(cls) -> ModelFacts:
        """Stands in for a model a dry run must not read: the job is built, never run."""
        return cls(PreprocessSpec((224, 224)), None, "dry-run", "unknown")


def labels_from_file(path: str, model: ImageModel) -> tuple[str, ...]:
    """A plain model's class names from ``--labels_file`` (one label a line, in class order).

    Raises:
      ModelLoadError: a bundle (it carries its own), an unreadable file, or a label count
        that is not the model's class count.
    """
    if model.kind == "bundle":
        raise ModelLoadError(
            "--labels_file names a plain model's classes; a bundle carries its own labels "
            f"({BUNDLE_LABELS_ASSET}): drop --labels_file"
        )
    try:
        labels = tuple(read_text(path).splitlines())
    except (OSError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"--labels_file {path!r}: cannot read: {type(e).__name__}") from None
    if model.num_classes is not None and len(labels) != model.num_classes:
        raise ModelLoadError(
            f"--labels_file {path!r} has {len(labels)} labels for the model's "
            f"{model.num_classes} classes; give one label a line, in class order"
        )
    return labels


def model_facts(
    model: ImageModel,
    image_size: tuple[int, int] | None,
    normalization: str | None,
    labels_file: str | None = None,
) -> ModelFacts:
    """Reads what the job needs from the loaded ``model`` (its class names from
    ``labels_file`` when given).

    Raises:
      ModelLoadError: flags that contradict the model.
    """
    labels = labels_from_file(labels_file, model) if labels_file else model.labels
    return ModelFacts(
        spec=resolve_spec(model, image_size, normalization),
        labels=tuple(labels) if labels else None,
        digest=model.digest,
        kind=model.kind,
        input_dtype=model.input_dtype,
        warnings=tuple(w.to_record() for w in inspect(model)),
        output_key=model.output_key,
    )


def resolve_spec(
    model: ImageModel, image_size: tuple[int, int] | None, normalization: str | None
) -> PreprocessSpec:
    """The bundle's spec, or the flags' settings with the size defaulting to the model's input.

    Raises:
      ModelLoadError: flags that contradict the model.
    """
    if model.bundle_spec is not None:
        if normalization is not None or image_size is not None:
            raise ModelLoadError(
                "a model bundle carries its own preprocessing; drop --image_size/--normalization"
            )
        return model.bundle_spec
    if model.input_dtype in INTEGER_INPUTS:
        # Such a model normalises inside itself: it wants the resized pixels as they are.
        if normalization not in (None, "none"):
            raise ModelLoadError(
                f"the model takes {model.input_dtype} pixels, which it normalises itself; "
                f"--normalization {normalization} cannot apply: drop it or pass none"
            )
        normalization = "none"
    fixed = tuple(model.input_size)
    if image_size is None:
        if None in fixed:
            raise ModelLoadError("the model accepts any image size; pass --image_size H W")
        image_size = fixed
    elif None not in fixed and tuple(image_size) != fixed:
        raise ModelLoadError(
            f"--image_size {image_size[0]} {image_size[1]} does not match the model's input "
            f"{fixed[0]}x{fixed[1]}; drop the flag or pass the model's size"
        )
    return PreprocessSpec(tuple(image_size), normalization or "symmetric")
