"""Cost of the layer probe on ResNet50 (random weights): time and peak RSS.

    python -m benchmarks.layer_probe [--batch_size 8]

Times one ordinary batch call and one batch-of-1 call (the job's own model call), then the
probe (x in a batch of ``--batch_size`` against x alone, every layer compared in-graph), and
reports the process's peak RSS before and after the probe.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args()
    import keras

    from transforms import layer_probe
    from transforms.model import load_image_model

    keras.utils.set_random_seed(0)
    net = keras.applications.ResNet50(weights=None)
    path = os.path.join(tempfile.mkdtemp(), "resnet50.keras")
    net.save(path)
    model = load_image_model(path)
    x = np.random.default_rng(0).uniform(-1, 1, (224, 224, 3)).astype(np.float32)
    batch = layer_probe.in_its_batch(x, 3, args.batch_size, None)
    start = time.perf_counter()
    model.score(batch), model.score(x[None])  # the job's first calls trace its function
    traced = time.perf_counter() - start
    start = time.perf_counter()
    model.score(batch), model.score(x[None])
    calls = time.perf_counter() - start
    before = _peak_mib()
    start = time.perf_counter()
    graph = layer_probe.layer_graph(model)
    built = time.perf_counter() - start
    first = layer_probe.profile(graph, batch, 3, x[None], 0, 1e-5, 1e-4, "single", "x", False)
    second = layer_probe.profile(graph, batch, 3, x[None], 0, 1e-5, 1e-4, "single", "x", False)
    print(f"layers compared: {len(first.layers)} (nodes {len(graph.nodes)})")
    print(
        f"job's calls (batch {args.batch_size} + alone): first {traced:.2f} s, then {calls:.2f} s"
    )
    print(f"layer graph built: {built:.2f} s")
    print(f"probe, first (traces): {first.seconds:.2f} s; again: {second.seconds:.2f} s")
    print(f"peak RSS before the probe {before:.0f} MiB, after {_peak_mib():.0f} MiB")
    worst = max(first.layers, key=lambda layer: layer.max_abs_diff)
    print(f"largest layer |diff|: {worst.name} {worst.max_abs_diff:.3g}")


if __name__ == "__main__":
    main()
