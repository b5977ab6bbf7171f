"""Scores one image exactly as the online path does, optionally beside its batch prediction.

    python -m pipeline.predict_one IMAGE --model BUNDLE [--against OUTPUT_DIR] [--top_k 5]
    python -m pipeline.predict_one IMAGE --model M --against OUTPUT_DIR --layers

The image's bytes go, as a serialized tf.train.Example, through the bundle's
``serving_default`` signature with tfx-bsl's SavedModel handler: the code TF Serving's model
runs. With ``--against``, the image's prediction in a batch job's output is found and printed
side by side with the online scores, the difference, and the batch it was scored in: the tool
for "the endpoint and the batch job disagree".

With ``--layers`` (and ``--against``), the image is also scored in its batch as the run scored
it (its batch members from the run's predictions, its position, the run's preprocessing,
padding and tolerance) and alone, every layer compared (``transforms.core.layer_probe``): where in
the network the two part ways. ``--model`` may then be any model the job takes.
"""

from __future__ import annotations

import sys

from pipeline import cli, disk_full

if __name__ == "__main__":
    # --help answers from pipeline.cli's tables before TensorFlow is imported below.
    cli.exit_on_help(cli.PREDICT_ONE, sys.argv[1:])
    cli.exit_on_early_refusal(cli.PREDICT_ONE, sys.argv[1:], "predict_one")
cli.import_tensorflow_quietly()

import posixpath

import numpy as np
import tensorflow as tf

from pipeline.credentials import check_gcs_credentials
from pipeline.outputs import read_json
from transforms.core import diagnosis, layer_probe
from transforms.core.common import normalize_uri
from transforms.core.comparisons import SINGLE, LayerProfile
from transforms.core.model_reading import ModelLoadError, load_image_model
from transforms.core.preprocess import PreprocessSpec, make_preprocess_fn
from transforms.core.records import ImageError, error_detail, top_k
from transforms.io.read_predictions import find_record, run_format, run_records
from transforms.score.read_files import read_file
from transforms.score.serving_reference import ServingModelHandler, image_example


def score_online(image_bytes: bytes, bundle: str) -> np.ndarray:
    """The scores the serving signature gives this image (a batch of one, via tfx-bsl)."""
    handler = ServingModelHandler(bundle)
    ((_, scores),) = handler.run_inference(
        [(None, image_example(image_bytes))], handler.load_model()
    )
    if isinstance(scores, Exception):
        raise scores
    return scores


def _read_image(image: str, max_file_bytes: int) -> bytes:
    """The image's bytes under the scoring job's own checks: a FIFO, a device or a file over
    ``max_file_bytes`` is refused with one line, never read."""
    try:
        return read_file(image, max_file_bytes)
    except ImageError as e:
        raise ValueError(f"cannot read {image}: {e} ({e.reason})") from None


def find_batch_prediction(output_dir: str, image: str) -> dict | None:
    """The image's record in a job's output (any output format; local, ``gs://``, ...), by key
    or URI. Reads shards in order until it is found: a look-up, not a job.

    The image is keyed as the job keys its inputs (``normalize_uri``: a local file by its
    absolute path), so any spelling of it, from any directory, finds the same record."""
    key = normalize_uri(image)
    return find_record(output_dir, lambda r: key in (r["key"], r["uri"]))


def _format_side_by_side(online: np.ndarray, batch: dict, labels, k: int) -> list[str]:
    batch_scores = {entry["index"]: entry["score"] for entry in batch["top_k"]}
    full = batch.get("scores")
    lines = [f"  {'label':<16} {'online':>12} {'batch':>12} {'|diff|':>10}"]
    for entry in top_k(online, k, labels):
        index = entry["index"]
        other = full[index] if full else batch_scores.get(index)
        diff = "" if other is None else f"{abs(entry['score'] - other):.3g}"
        other_text = "(not in top-k)" if other is None else f"{other:.6g}"
        lines.append(f"  {entry['label']:<16} {entry['score']:>12.6g} {other_text:>12} {diff:>10}")
    if full:
        valid = np.array([np.nan if v is None else v for v in full], dtype=np.float64)
        lines.append(
            f"  max |diff| over all {len(valid)} classes: {np.nanmax(np.abs(valid - online)):.3g}"
        )
    lines.append(
        f"  batch: scored in batch {batch['batch_id']} of {batch['batch_size']} real rows, "
        f"at position {batch['position']}, model digest {batch['model_digest']}"
    )
    return lines


def profile_in_batch(model, image_bytes: bytes, batch: dict, run_dir: str, read) -> LayerProfile:
    """The image in its batch (members and position from the run) against the image alone,
    layer by layer, with the run's preprocessing, padding and tolerance; ``read(uri)`` reads
    a member's bytes.

    Raises:
      ValueError: the run's record cannot rebuild the batch (no preprocessing recorded,
        members that are records inside shards, or members missing).
    """
    run = read_json(posixpath.join(run_dir, "run.json"))
    options, recorded = run.get("options") or {}, run.get("preprocessing")
    if not recorded:
        raise ValueError(f"{run_dir}/run.json records no preprocessing to rebuild the batch")
    spec = PreprocessSpec(**{**recorded, "image_size": tuple(recorded["image_size"])})
    members = sorted(
        (r for r in run_records(run_dir) if r["batch_id"] == batch["batch_id"]),
        key=lambda r: r["position"],
    )
    if [r["position"] for r in members] != list(range(batch["batch_size"])):
        raise ValueError(
            f"the run holds {len(members)} of the {batch['batch_size']} members of batch "
            f"{batch['batch_id']}; the batch cannot be rebuilt"
        )
    if any(r["key"] != r["uri"] for r in members):
        raise ValueError("the batch's members are records inside shards; --layers reads files")
    preprocess = make_preprocess_fn(spec)
    tensors = [
        preprocess(
            tf.constant(image_bytes if r is members[batch["position"]] else read(r["uri"]))
        ).numpy()
        for r in members
    ]
    pad = options.get("batch_size") if options.get("pad_batches") else None
    stacked = np.stack(tensors)
    x = stacked[batch["position"]]
    return layer_probe.profile(
        layer_probe.layer_graph(model),
        layer_probe.pad_to_size(stacked, pad) if pad else stacked,
        batch["position"],
        layer_probe.alone(x, pad),
        0,
        options.get("atol", 1e-5),
        options.get("rtol", 1e-4),
        SINGLE,
        batch["key"],
    )


def format_profile(profile: LayerProfile, batch: dict) -> list[str]:
    """The profile as printed: one line a layer, the first divergent one marked."""
    first = profile.first_divergent_layer
    lines = [
        f"layers: in its batch {batch['batch_id']} ({batch['batch_size']} rows, position "
        f"{batch['position']}) vs alone; x tolerance = |diff| / (atol + rtol*|value|)",
        f"  {'':2}{'depth':>5}  {'layer':<32} {'max |diff|':>11} {'x tolerance':>12}",
    ]
    for layer in profile.layers:
        mark = ">>" if first is not None and layer.name == first.name else ""
        lines.append(
            f"  {mark:<2}{layer.depth:>5}  {layer.name:<32} {layer.max_abs_diff:>11.3g} "
            f"{layer.tolerance_ratio:>12.3g}"
        )
    sentence = diagnosis.divergence_sentence(profile)
    lines.append(f"  {sentence}" if sentence else "  no layer jumps beyond tolerance")
    return lines


def _print_layers(model, image_bytes: bytes, batch: dict, run_dir: str, max_file_bytes) -> int:
    try:
        profile = profile_in_batch(
            model, image_bytes, batch, run_dir, lambda uri: _read_image(uri, max_file_bytes)
        )
    except (ValueError, OSError) as e:
        print(f"predict_one: --layers: {e}", file=sys.stderr)
        return cli.EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - a graph the probe cannot read: one clear line
        print(f"predict_one: --layers: cannot probe this model: {error_detail(e)}", file=sys.stderr)
        return 1
    if batch.get("model_digest") not in (None, model.digest):
        print(f"  note: the run scored with model digest {batch['model_digest']}, not this one")
    for line in format_profile(profile, batch):
        print(line)
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if cli.wants_help(argv):
        cli.parser_for(cli.PREDICT_ONE).print_help()
        return cli.EXIT_OK
    cli.configure_logging()
    try:
        args = cli.parse(cli.PREDICT_ONE, argv)
        check_gcs_credentials(
            [("--model", args.model), ("IMAGE", args.image), ("--against", args.against)]
        )
        if args.layers and args.against is None:
            raise cli.UsageError("--layers profiles the image against its batch: add --against")
        model = load_image_model(args.model)
        if model.kind != "bundle" and not args.layers:
            raise ModelLoadError(f"{args.model} is not a model bundle (python -m pipeline.export)")
        if args.max_file_bytes < 1:
            raise ValueError("--max_file_bytes must be positive")
        image_bytes = _read_image(args.image, args.max_file_bytes)
        if args.against is not None:
            run_format(args.against)  # a path holding no run: say so before scoring
    except Exception as e:  # noqa: BLE001 - a missing image or unusable model: one clear line
        print(f"predict_one: error: {e}", file=sys.stderr)
        return cli.EXIT_USAGE
    batch = None if args.against is None else find_batch_prediction(args.against, args.image)
    if model.kind != "bundle":  # --layers with a plain model: no online path to show
        if batch is None:
            print(f"{args.image}: no prediction under {args.against}/predictions")
            return 1
        print(f"{args.image}: batch job {args.against}")
        return _print_layers(model, image_bytes, batch, args.against, args.max_file_bytes)
    try:
        online = score_online(image_bytes, args.model)
    except Exception as e:  # noqa: BLE001 - the serving path refused the image
        print(f"predict_one: the serving signature failed on {args.image}: {e}", file=sys.stderr)
        return 1
    print(f"{args.image}: online (serving_default via tfx-bsl), top {args.top_k}:")
    if batch is None:
        for entry in top_k(online, args.top_k, model.labels):
            print(f"  {entry['label']:<16} {entry['score']:.6g}")
        if args.against is None:
            return 0
        print(f"  no prediction for {args.image} under {args.against}/predictions")
        return 1
    for line in _format_side_by_side(online, batch, model.labels, args.top_k):
        print(line)
    if batch.get("model_digest") != model.digest:
        print(
            f"  note: the models differ: --model {args.model} has digest {model.digest}, the "
            f"batch prediction's model {batch.get('model_digest')}; the difference above is "
            "between two models, not a skew of one"
        )
    if not args.layers:
        return 0
    return _print_layers(model, image_bytes, batch, args.against, args.max_file_bytes)


if __name__ == "__main__":
    sys.exit(disk_full.exit_status("predict_one", main))
