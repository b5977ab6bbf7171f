"""Does ``--pad_batches`` make batched scores bitwise equal to their reference?

    python -m benchmarks.batch_invariance [--images 64] [--workdir /tmp/batch-score-bench]

For the demo bundle and the random-weight MobileNetV2 and ResNet50 of the benchmark (with
BatchNorm statistics calibrated on the images, as random weights otherwise give degenerate,
constant outputs that are trivially equal), runs the job on the same photo-like JPEGs with
``--reconcile_fraction 1`` at batch 32, without and with ``--pad_batches``, and prints how
many comparisons were bitwise identical, within tolerance or mismatched, the largest
|difference| and the batch positions of the rows that were not identical. Not a speed
measurement: results do not depend on machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks import corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(model: str, pattern: str, output: str, pad: bool) -> dict:
    command = [
        sys.executable, "-m", "pipeline.run", "--input", pattern, "--model", model,
        "--output", output, "--overwrite", "--reconcile_fraction", "1", "--batch_size", "32",
    ]  # fmt: skip
    if pad:
        command.append("--pad_batches")
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    with open(os.path.join(output, "reconciliation", "summary.json")) as f:
        return json.load(f)


def _positions_not_identical(output: str) -> str:
    directory = os.path.join(output, "reconciliation", "elements")
    positions = set()
    for name in os.listdir(directory):
        with open(os.path.join(directory, name)) as f:
            for line in f:
                record = json.loads(line)
                if record["status"] != "identical":
                    positions.add(record["position"])
    if len(positions) > 8:
        return f"{len(positions)} positions"
    return ", ".join(str(p) for p in sorted(positions)) or "none"


def calibrated(path: str, images: list[str]) -> str:
    """A copy of the model whose BatchNorm moving statistics are those of ``images``."""
    target = path.replace(".keras", "_calibrated.keras")
    if os.path.exists(target):
        return target
    import keras
    import tensorflow as tf

    from transforms.core.preprocess import PreprocessSpec, preprocess_batch

    model = keras.saving.load_model(path, compile=False)
    batches = [images[i : i + 32] for i in range(0, len(images), 32)]
    spec = PreprocessSpec((224, 224))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # one training-mode pass sets moving stats to batch stats
    encoded = []
    for image in batches[0]:
        with open(image, "rb") as f:
            encoded.append(f.read())
    model(preprocess_batch(tf.constant(encoded), spec), training=True)
    model.save(target)
    return target


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--workdir", default="/tmp/batch-score-bench")
    args = parser.parse_args(argv)
    images = corpus.write_corpus(os.path.join(args.workdir, "corpus"), args.images)
    pattern = os.path.join(os.path.dirname(images[0]), "*.jpg")
    models = corpus.save_models(os.path.join(args.workdir, "models"))
    rows = [("demo bundle (32x32)", os.path.join(ROOT, "data", "demo_bundle"))]
    rows += [
        (f"{name} (224x224, calibrated BN)", calibrated(path, images))
        for name, path in models.items()
    ]
    columns = ["model", "--pad_batches", "compared", "identical", "within tolerance"]
    columns += ["mismatch", "max abs diff", "positions not identical"]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for label, model in rows:
        for pad in (False, True):
            output = os.path.join(args.workdir, "invariance", f"{os.path.basename(model)}-{pad}")
            s = _run(model, pattern, output, pad)
            print(
                f"| {label} | {'yes' if pad else 'no'} | {s['compared']} | {s['identical']} | "
                f"{s['within_tolerance']} | {s['mismatch']} | {s['max_abs_diff']:.3g} | "
                f"{_positions_not_identical(output)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
