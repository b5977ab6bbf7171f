"""Cost of the layer probe on ResNet50 (random weights): time and peak RSS.

    python -m benchmarks.layer_probe [--batch_size 8]

Times (wall and this process's CPU seconds: the machine is shared, CPU time is the steadier
figure) the job's own calls (x in a batch of ``--batch_size``, then x alone; first calls trace),
then the probe twice (the first traces the every-layer call), and reports the process's peak RSS
before and after the probe.
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


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args()
    import keras

    from transforms.core import layer_probe
    from transforms.core.model_reading import load_image_model

    keras.utils.set_random_seed(0)
    net = keras.applications.ResNet50(weights=None)
    path = os.path.join(tempfile.mkdtemp(), "resnet50.keras")
    net.save(path)
    model = load_image_model(path)
    x = np.random.default_rng(0).uniform(-1, 1, (224, 224, 3)).astype(np.float32)
    batch = layer_probe.in_its_batch(x, 3, args.batch_size, None)

    def job_calls():
        return model.score(batch), model.score(x[None])

    def probe():
        graph = layer_probe.layer_graph(model)
        return layer_probe.profile(graph, batch, 3, x[None], 0, 1e-5, 1e-4, "single", "x", False)

    _, first_wall, first_cpu = _timed(job_calls)
    _, wall, cpu = _timed(job_calls)
    before = _peak_mib()
    profile, probe_first_wall, probe_first_cpu = _timed(probe)
    _, probe_wall, probe_cpu = _timed(probe)
    print(
        f"layers compared: {len(profile.layers)}; first divergent: {profile.first_divergent_layer}"
    )
    print(f"job's two calls, first (traces): {first_wall:.2f} s wall, {first_cpu:.2f} s CPU")
    print(f"job's two calls, again:          {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"probe, first (traces): {probe_first_wall:.2f} s wall, {probe_first_cpu:.2f} s CPU")
    print(f"probe, again:                    {probe_wall:.2f} s wall, {probe_cpu:.2f} s CPU")
    print(f"peak RSS before the probe {before:.0f} MiB, after {_peak_mib():.0f} MiB")
    worst = max(profile.layers, key=lambda layer: layer.max_abs_diff)
    print(f"largest layer |diff|: {worst.name} {worst.max_abs_diff:.3g} (depth {worst.depth})")


if __name__ == "__main__":
    main()
