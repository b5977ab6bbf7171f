"""Exports a Keras model as a model bundle: a SavedModel with the shared preprocessing inside.

    python -m pipeline.export --model M.keras --output BUNDLE [--labels labels.txt]
        [--image_size H W] [--normalization symmetric]

Signatures (all built on ``transforms.core.preprocess``, none in training mode):
- ``serving_default``: serialized tf.train.Example (bytes feature ``image``) -> ``scores``;
  what TF Serving and tfx-bsl run.
- ``serve_image_bytes``: encoded images -> ``scores``.
- ``score_tensor``: preprocessed float32 [N, H, W, 3] -> ``scores``; what the batch path runs.

The weights are stored once, in ``variables/``, as plain resource ``tf.Variable``s that all three
signatures read: the ones underneath the Keras 3 variables, tracked without the Keras objects
around them, which the TF1 session loader tfx-bsl uses cannot restore ("Could not find
variable"). The bundle loads with both that loader and ``tf.saved_model.load``, its
``saved_model.pb`` holds only the graph (so no model is too large for protobuf's 2 GB), and its
scores equal the Keras model's own byte for byte. See docs/bundles.md.
"""

from __future__ import annotations

import os
import sys

from pipeline import cli, disk_full, quiet
from pipeline.flags import EXIT_OK, EXIT_USAGE, UsageError
from pipeline.tool_flags import EXPORT

if __name__ == "__main__":
    # --help answers from the flag tables (pipeline.cli) before TensorFlow is imported below.
    cli.exit_on_help(EXPORT, sys.argv[1:])
    cli.exit_on_early_refusal(EXPORT, sys.argv[1:], "export")
    # A pooling CPU allocator (the BFC one the transforms package picks for scoring speed, or
    # oneDNN's) keeps every buffer TensorFlow frees: the random weights Keras makes before it
    # loads the real ones, and the two copies of each weight while it is assigned. Export runs
    # no batches, so it loses nothing with the plain allocator, and a 2.6 GB model's peak drops
    # from 2.7x to under 2x its scoring job's (BENCHMARKS.md, issue 22). TensorFlow reads both
    # at its first allocation, which comes later, below.
    os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "false"
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
quiet.import_tensorflow_quietly()

import posixpath
import tempfile

import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from transforms.core.common import (
    BUNDLE_LABELS_ASSET,
    BUNDLE_SPEC_ASSET,
    IMAGE_FEATURE,
    SCORE_TENSOR_SIGNATURE,
    is_local,
)
from transforms.core.model_facts import resolve_spec
from transforms.core.model_reading import ModelLoadError, load_image_model
from transforms.core.preprocess import (
    PreprocessSpec,
    preprocess_batch,
    to_model_dtype,
)

# --output must be empty, so the partial bundle keeps a rerun out of it.
INCOMPLETE = "the bundle there is incomplete: free space, then rerun into a new --output"


def _resource_variables(net) -> list[tf.Variable]:
    """The plain ``tf.Variable`` under each Keras variable of ``net`` (its weights, and any
    state such as a seed generator's that its graph reads)."""
    found = [variable.value for variable in net.variables]
    for variable in found:
        if not isinstance(variable, tf.Variable):
            raise TypeError(f"{variable.name}: not a TensorFlow variable; is the Keras backend TF?")
    return found


class _Bundle(tf.Module):
    def __init__(self, net, spec: PreprocessSpec, dtype: str):
        super().__init__()
        # Tracked here, these are what variables/ holds and every signature captures. The Keras
        # model itself stays out of the object graph: only the closure below refers to it.
        self.model_variables = _resource_variables(net)
        self._forward = lambda pixels: net(pixels, training=False)
        self._dtype = dtype
        self._spec = spec
        height, width = spec.image_size
        tensor_spec = tf.TensorSpec([None, height, width, 3], tf.float32, name="images")
        self.score_tensor = tf.function(self._score_tensor, input_signature=[tensor_spec])
        self.serve_image_bytes = tf.function(
            self._serve_image_bytes, input_signature=[tf.TensorSpec([None], tf.string)]
        )
        self.serving_default = tf.function(
            self._serving_default, input_signature=[tf.TensorSpec([None], tf.string)]
        )

    def _scores(self, images):
        # Every signature takes float32 pixels and converts them as the batch path does.
        return self._forward(to_model_dtype(images, self._dtype))

    def _score_tensor(self, images):
        return {"scores": self._scores(images)}

    def _serve_image_bytes(self, image_bytes):
        return {"scores": self._scores(preprocess_batch(image_bytes, self._spec))}

    def _serving_default(self, examples):
        features = tf.io.parse_example(
            examples, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)}
        )
        return {"scores": self._scores(preprocess_batch(features[IMAGE_FEATURE], self._spec))}


def export_bundle(
    net,
    output: str,
    spec: PreprocessSpec,
    labels: list[str] | None = None,
) -> str:
    """Writes ``net`` (a Keras model) with ``spec`` as a bundle at ``output``; returns the path.

    An integer-input model (``uint8``, ``int32``) gets the resized pixels rounded to its dtype
    in every signature, with normalisation ``none``.

    ``output`` may be on any Beam filesystem (``gs://``...): the bundle is then written to a
    local temporary directory and copied there file by file.
    """
    if not is_local(output):
        with tempfile.TemporaryDirectory(prefix="bundle-") as local:
            _write_bundle(net, local, spec, labels)
            _copy_tree(local, output)
        return output
    _write_bundle(net, output, spec, labels)
    return output


def _write_bundle(net, output: str, spec: PreprocessSpec, labels: list[str] | None) -> None:
    bundle = _Bundle(net, spec, str(net.inputs[0].dtype))
    tf.saved_model.save(
        bundle,
        output,
        signatures={
            "serving_default": bundle.serving_default.get_concrete_function(),
            "serve_image_bytes": bundle.serve_image_bytes.get_concrete_function(),
            SCORE_TENSOR_SIGNATURE: bundle.score_tensor.get_concrete_function(),
        },
    )
    os.makedirs(os.path.join(output, "assets"), exist_ok=True)
    with open(os.path.join(output, BUNDLE_SPEC_ASSET), "w") as f:
        f.write(spec.to_json() + "\n")
    if labels:
        with open(os.path.join(output, BUNDLE_LABELS_ASSET), "w") as f:
            f.write("\n".join(labels) + "\n")


def _copy_tree(local: str, destination: str) -> None:
    """Copies every file under the local directory ``local`` to ``destination`` (any Beam
    filesystem), keeping relative paths."""
    for root, _, names in os.walk(local):
        for name in names:
            source = os.path.join(root, name)
            relative = os.path.relpath(source, local).replace(os.sep, "/")
            with (
                open(source, "rb") as src,
                FileSystems.create(posixpath.join(destination, relative)) as dst,
            ):
                dst.write(src.read())


def _has_files(path: str) -> bool:
    if is_local(path):
        return os.path.isfile(path) or (os.path.isdir(path) and bool(os.listdir(path)))
    return bool(FileSystems.match([posixpath.join(path, "**")], limits=[1])[0].metadata_list)


def read_labels(path: str, num_classes: int | None) -> list[str]:
    """One label a line, in class order; exactly one per class.

    Raises:
      ModelLoadError: a blank label, or not one label per class (the predictions would
        otherwise mix label names with bare class numbers, or name the wrong classes).
    """
    with FileSystems.open(path) as f:
        labels = [line.strip() for line in f.read().decode("utf-8").splitlines()]
    while labels and not labels[-1]:
        labels.pop()  # trailing blank lines are only the file's end
    if "" in labels:
        raise ModelLoadError(
            f"--labels {path}: line {labels.index('') + 1} is blank; write one label a line"
        )
    if num_classes is not None and len(labels) != num_classes:
        raise ModelLoadError(
            f"--labels {path} has {len(labels)} labels; the model has {num_classes} classes"
        )
    return labels


def main(argv=None) -> int:
    """The command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if cli.wants_help(argv):
        cli.parser_for(EXPORT).print_help()
        return EXIT_OK
    quiet.configure_logging()
    try:
        args = cli.parse(EXPORT, argv)
        if not args.model.endswith(".keras"):
            raise ModelLoadError(f"--model {args.model}: expected a .keras file")
        if _has_files(args.output):
            raise ModelLoadError(f"--output {args.output} exists and is not empty")
        loaded = load_image_model(args.model)
        spec = resolve_spec(
            loaded, tuple(args.image_size) if args.image_size else None, args.normalization
        )
        spec = PreprocessSpec(spec.image_size, spec.normalization, args.resize_method)
        labels = read_labels(args.labels, loaded.num_classes) if args.labels else None
    except (UsageError, ModelLoadError, ValueError, OSError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        export_bundle(loaded.handle, args.output, spec, labels)
    except Exception as e:  # TensorFlow's ResourceExhaustedError is no OSError
        if not disk_full.is_disk_full(e):
            raise
        return disk_full.report("export", args.output, INCOMPLETE)
    print(f"bundle written to {args.output}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(disk_full.exit_status("export", main))
