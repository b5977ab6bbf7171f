"""Reading a model and calling it the one way every path calls it (TensorFlow only, no Beam).

A model is a model bundle (see ``pipeline.export``), a TF2 SavedModel directory or a Keras
``.keras`` file. ``ImageModel.score`` is the single model call: the batched scores, the
per-element reference and every diagnosis probe go through it, because eager, ``tf.function``
and XLA calls of the same model differ by more than batch size does; ``call_model`` adds the
optional zero padding (``--pad_batches``) that the scoring stage and reconciliation share.

How a loaded model is shared between a worker's DoFns and processes is the scoring job's
business (``transforms.score.model_sharing``); what the launcher reads from it once is
``transforms.core.model_facts``.

A model on a remote filesystem (``gs://``...) is read through Beam's ``FileSystems``, imported
only where a path is read: it is the one reader that knows every filesystem the job's
``--input`` and ``--output`` accept (``tf.io.gfile`` knows ``gs://`` with other credentials,
and none of Beam's other or registered filesystems), so a model is readable wherever its job is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import shutil
import tempfile
import threading
import zipfile

import numpy as np
import tensorflow as tf

from transforms.core.common import (
    BUNDLE_LABELS_ASSET,
    BUNDLE_SPEC_ASSET,
    SCORE_TENSOR_SIGNATURE,
    is_local,
)
from transforms.core.preprocess import INTEGER_INPUTS, PreprocessSpec, to_model_dtype
from transforms.core.records import error_detail


def _filesystems():
    """Beam's ``FileSystems`` (see the module docstring for why, and why imported here)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


class ModelLoadError(ValueError):
    """The model is missing, unloadable, or not an image classifier we can score."""


class ModelOutputError(ValueError):
    """A model call returned scores of another shape than [batch rows, classes]."""


@dataclasses.dataclass
class ImageModel:
    """A loaded model behind one call: float32 [N, H, W, 3] -> scores [N, C].

    ``input_dtype`` is what the model itself takes; ``score`` converts the preprocessed float32
    pixels to it (an integer input gets them rounded), so every path feeds the model alike.
    """

    score_fn: object  # tf.function or signature; called only through score()
    input_size: tuple[int | None, int | None]
    num_classes: int | None
    digest: str
    kind: str  # "bundle", "saved_model" or "keras"
    bundle_spec: PreprocessSpec | None = None
    labels: list[str] | None = None
    handle: object = None  # the Keras model or loaded SavedModel (kept alive with score_fn)
    input_dtype: str = "float32"
    graph_def: object = None  # the scoring signature's GraphDef (SavedModels), for inspection
    output_key: str | None = None  # the signature output scored (SavedModels and bundles)
    _load_claimed: bool = dataclasses.field(default=False, repr=False, compare=False)
    _claim_lock: threading.Lock = dataclasses.field(
        default_factory=threading.Lock, repr=False, compare=False
    )

    def claim_load(self) -> bool:
        """True for exactly one caller over this loaded instance's life: the one that counts
        its load (whichever DoFn, in whichever thread, acquired it first)."""
        with self._claim_lock:
            claimed, self._load_claimed = self._load_claimed, True
        return not claimed

    def score(self, batch: np.ndarray) -> np.ndarray:
        """Scores [N, C] of a batch; ``ModelOutputError`` for any other shape (a squeeze that
        drops the batch axis at N == 1), which the callers isolate like any model failure."""
        images = to_model_dtype(tf.constant(batch, dtype=tf.float32), self.input_dtype)
        scores = np.asarray(self.score_fn(images))
        classes = self.num_classes
        if (
            scores.ndim != 2
            or scores.shape[0] != len(batch)
            or classes not in (None, scores.shape[1])
        ):
            raise ModelOutputError(
                f"the model returned scores of shape {list(scores.shape)} for a batch of "
                f"{len(batch)}; expected [{len(batch)}, {classes or 'classes'}]"
            )
        return scores


def pad_to(batch: np.ndarray, size: int) -> np.ndarray:
    """Zero rows appended so every model call sees the same shape."""
    if len(batch) >= size:
        return batch
    padding = np.zeros((size - len(batch),) + batch.shape[1:], dtype=batch.dtype)
    return np.concatenate([batch, padding])


def call_model(model: ImageModel, batch: np.ndarray, pad_size: int | None) -> np.ndarray:
    """One model call; with ``pad_size`` the batch is zero-padded and the padding dropped."""
    scores = model.score(pad_to(batch, pad_size) if pad_size else batch)
    return scores[: len(batch)]


def make_deterministic() -> None:
    """``--deterministic`` in this process: TensorFlow op determinism and fixed seeds (Python,
    NumPy, TensorFlow, Keras). Both are per process, so every worker calls this where it loads
    a model, as the launcher does before its own load: each process then starts from the same
    seeded state."""
    import keras

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()


def is_bundle(path: str) -> bool:
    """Whether ``path`` (any filesystem) is a model bundle: it holds the bundle's spec asset."""
    return _filesystems().exists(posixpath.join(path, BUNDLE_SPEC_ASSET))


def read_text(path: str) -> str:
    """A UTF-8 text file on any filesystem the job reads (a bundle asset, ``--labels_file``)."""
    with _filesystems().open(path) as f:
        return f.read().decode("utf-8")


def localize(path: str) -> str:
    """Local path of the model, copying it from a remote filesystem (gs://) if needed."""
    if is_local(path):
        return path
    local_root = tempfile.mkdtemp(prefix="model-")
    files = _filesystems().match([path.rstrip("/") + "/**"])[0].metadata_list
    if not files:  # a single file, e.g. a .keras
        files = _filesystems().match([path])[0].metadata_list
    base = path.rstrip("/")
    try:
        for metadata in files:
            relative = metadata.path[len(base) :].lstrip("/") or posixpath.basename(base)
            target = os.path.normpath(os.path.join(local_root, relative))
            # An object name is any string: "../x" or "a/../../x" must not land outside the copy.
            if os.path.commonpath([local_root, target]) != local_root or target == local_root:
                raise ModelLoadError(
                    f"model file name {relative!r} points outside the model's folder; refused"
                )
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with _filesystems().open(metadata.path) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)  # a chunk at a time, never a whole file
    except BaseException:
        shutil.rmtree(local_root, ignore_errors=True)
        raise
    single = os.path.join(local_root, posixpath.basename(base))
    return single if os.path.isfile(single) else local_root


def model_digest(local_path: str) -> str:
    """sha256 over the model's files (names and contents), shortened to 16 hex digits."""
    h = hashlib.sha256()
    if os.path.isfile(local_path):
        paths = [local_path]
    else:
        paths = sorted(
            os.path.join(root, name) for root, _, names in os.walk(local_path) for name in names
        )
    for p in paths:
        h.update(os.path.relpath(p, local_path).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _single_signature_input(fn) -> tuple[str, tf.TensorSpec]:
    _, kwargs = fn.structured_input_signature
    if len(kwargs) != 1:
        raise ModelLoadError(f"the model's signature takes {len(kwargs)} inputs; expected 1 image")
    return next(iter(kwargs.items()))


def _signature_caller(fn, input_name: str, output_key: str):
    def call(batch):
        return fn(**{input_name: batch})[output_key]

    return call


def _scores_output(fn, output_key: str | None, where: str) -> tuple[str, tf.TensorSpec]:
    """The signature output to score: the only one, or the one ``--output_key`` names; its
    spec must be floating scores [N, classes] where the signature states a rank.

    Raises:
      ModelLoadError: several outputs and no choice, an unknown name, or another shape.
    """
    outputs = fn.structured_outputs
    names = ", ".join(sorted(outputs))
    if output_key is not None and output_key not in outputs:
        raise ModelLoadError(f"--output_key {output_key!r} is not an output of {where} ({names})")
    if output_key is None and len(outputs) != 1:
        raise ModelLoadError(
            f"{where} has {len(outputs)} outputs ({names}); choose the scores with "
            "--output_key NAME"
        )
    name = output_key or next(iter(outputs))
    spec = outputs[name]
    if spec.shape.rank is not None and spec.shape.rank != 2:
        raise ModelLoadError(
            f"{where}'s output {name!r} has shape {spec.shape.as_list()}; expected scores "
            "[N, classes]"
        )
    if not (spec.dtype.is_floating or spec.dtype.is_integer):
        raise ModelLoadError(f"{where}'s output {name!r} is {spec.dtype.name}; expected numbers")
    return name, spec


def _check_image_input(shape, where: str) -> tuple[int | None, int | None]:
    shape = list(shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ModelLoadError(
            f"{where} takes input of shape {shape}; expected an image tensor [N, H, W, 3]"
        )
    return shape[1], shape[2]


def _load_bundle(local: str, digest: str, output_key: str | None = None) -> ImageModel:
    spec = PreprocessSpec.from_json(read_text(os.path.join(local, BUNDLE_SPEC_ASSET)))
    labels_path = os.path.join(local, BUNDLE_LABELS_ASSET)
    labels = read_text(labels_path).splitlines() if os.path.exists(labels_path) else None
    loaded = tf.saved_model.load(local)
    fn = loaded.signatures[SCORE_TENSOR_SIGNATURE]
    name, _ = _single_signature_input(fn)
    key, out = _scores_output(fn, output_key, f"the bundle's {SCORE_TENSOR_SIGNATURE}")
    num_classes = out.shape[-1]
    if labels is not None and num_classes is not None and len(labels) != num_classes:
        # Otherwise top-k would mix label names with bare class numbers.
        raise ModelLoadError(
            f"the bundle's {BUNDLE_LABELS_ASSET} has {len(labels)} labels for "
            f"{num_classes} classes; export it again with a matching --labels file"
        )
    return ImageModel(
        _signature_caller(fn, name, key),
        spec.image_size,
        num_classes,
        digest,
        "bundle",
        spec,
        labels,
        handle=loaded,
        graph_def=fn.graph.as_graph_def(),
        output_key=key,
    )


def _load_saved_model(local: str, digest: str, output_key: str | None = None) -> ImageModel:
    loaded = tf.saved_model.load(local)
    if "serving_default" not in loaded.signatures:
        raise ModelLoadError(f"{local} has no serving_default signature")
    fn = loaded.signatures["serving_default"]
    name, spec = _single_signature_input(fn)
    size = _check_image_input(spec.shape, "the SavedModel's serving_default")
    dtype = _check_input_dtype(spec.dtype.name, "the SavedModel's serving_default")
    key, out = _scores_output(fn, output_key, "the SavedModel's serving_default")
    return ImageModel(
        _signature_caller(fn, name, key),
        size,
        out.shape[-1] if out.shape.rank else None,
        digest,
        "saved_model",
        handle=loaded,
        input_dtype=dtype,
        graph_def=fn.graph.as_graph_def(),
        output_key=key,
    )


def _check_input_dtype(dtype: str, where: str) -> str:
    if dtype.startswith("float") or dtype == "bfloat16" or dtype in INTEGER_INPUTS:
        return dtype
    raise ModelLoadError(
        f"{where} takes {dtype} input; expected float or one of {', '.join(INTEGER_INPUTS)}"
    )


def _load_keras(local: str, digest: str) -> ImageModel:
    import keras

    if not zipfile.is_zipfile(local):
        raise ModelLoadError(f"cannot load model {local}: not a Keras .keras archive (a zip file)")
    try:
        # safe_mode refuses to deserialise Python lambdas: loading a file runs no code from it.
        net = keras.saving.load_model(local, compile=False, safe_mode=True)
    except ValueError as e:
        if "safe_mode" not in str(e):
            raise
        raise ModelLoadError(
            f"{local} contains a Lambda layer (arbitrary Python code), refused in Keras safe "
            "mode; replace it with a registered layer or export a SavedModel you trust"
        ) from None
    inputs = net.inputs
    if len(inputs) != 1:
        raise ModelLoadError(f"the Keras model has {len(inputs)} inputs; expected 1 image")
    size = _check_image_input(inputs[0].shape, "the Keras model")
    outputs = net.outputs
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ModelLoadError("the Keras model must have one output of shape [N, classes]")
    dtype = _check_input_dtype(str(inputs[0].dtype), "the Keras model")
    # One traced call in inference mode: Beam's TF handler never passes training=False.
    score_fn = tf.function(
        lambda x: net(x, training=False),
        input_signature=[tf.TensorSpec([None, size[0], size[1], 3], dtype)],
    )
    return ImageModel(
        score_fn, size, outputs[0].shape[-1], digest, "keras", handle=net, input_dtype=dtype
    )


def load_image_model(path: str, output_key: str | None = None) -> ImageModel:
    """Loads a bundle, a TF2 SavedModel or a .keras file; ``output_key`` chooses among a
    signature's outputs (required where it has several).

    Raises:
      ModelLoadError: missing, unloadable or not an image model.
    """
    if not _filesystems().exists(path):
        raise ModelLoadError(f"model not found: {path}")
    try:
        local = localize(path)
        digest = model_digest(local)
        if os.path.isdir(local):
            if os.path.exists(os.path.join(local, BUNDLE_SPEC_ASSET)):
                return _load_bundle(local, digest, output_key)
            if os.path.exists(os.path.join(local, "saved_model.pb")):
                return _load_saved_model(local, digest, output_key)
            raise ModelLoadError(f"{path} is a directory without saved_model.pb")
        if local.endswith(".keras"):
            if output_key is not None:
                raise ModelLoadError(
                    "--output_key chooses a SavedModel signature's output; a .keras model has "
                    "one output: drop the flag"
                )
            return _load_keras(local, digest)
        raise ModelLoadError(f"{path}: expected a model bundle, a SavedModel dir or a .keras file")
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure is reported as one clear line
        raise ModelLoadError(f"cannot load model {path}: {error_detail(e)}") from e
