"""What the default reconciliation costs, estimated from model-call rates (no full runs).

    python -m benchmarks.reconcile_cost [--model M.keras] [--batch_size 32] [--rounds 5]

Times the job's own model call (``transforms.core.model_reading.ImageModel.score``) on random
preprocessed tensors: batches of ``--batch_size`` (the scoring) and batches of one (the
reference). The reconciliation's extra model work for a job of N images is then

    effective_fraction(N) x N x t(batch of 1)  +  workers x t(batch of 1)  (repeat probe)

against N x t(row in a batch) for scoring. The denominator counts model time only (no reading
or decoding), so the estimate is an upper bound on the share of the whole job. Rates are the
best of several interleaved rounds, so load from other processes hits both alike. The report's
fixed cost (about 1 s per job, matplotlib) is added as measured by ``--report_seconds``.
Without ``--model`` it builds MobileNetV2 (random weights, no download) as a realistic model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

JOB_SIZES = (1_500, 20_000, 200_000, 10_000_000)


def _seconds_per_call(model, batch: np.ndarray, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        model.score(batch)
    return (time.perf_counter() - start) / calls


def _rates(model, batch: np.ndarray, rounds: int, calls: int) -> tuple[float, float]:
    """Best-of-rounds seconds per row (in a batch) and per batch-of-1 call, interleaved so
    that load from other processes hits both alike."""
    model.score(batch)  # trace and warm up both shapes
    model.score(batch[:1])
    rows, singles = [], []
    for _ in range(rounds):
        rows.append(_seconds_per_call(model, batch, calls) / len(batch))
        singles.append(_seconds_per_call(model, batch[:1], calls * 4))
    return min(rows), min(singles)


def estimate(
    t_row: float,
    t_single: float,
    images: int,
    fraction: float,
    minimum: int,
    workers: int = 1,
    report_seconds: float = 1.0,
) -> dict:
    """The reconciliation's share over scoring for a job of ``images`` (pure arithmetic)."""
    from transforms.core.records import effective_fraction

    share = effective_fraction(fraction, minimum, images)
    extra = share * images * t_single + workers * t_single + report_seconds
    return {
        "images": images,
        "fraction": fraction,
        "reconcile_min": minimum,
        "effective_fraction": share,
        "compared": round(share * images),
        "overhead": extra / (images * t_row),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="default: MobileNetV2, random weights")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--calls", type=int, default=3, help="batch calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report_seconds", type=float, default=1.0)
    args = parser.parse_args(argv)

    from transforms.core.model_reading import load_image_model

    path = args.model
    if path is None:
        import keras

        path = os.path.join(tempfile.mkdtemp(), "mobilenet_v2.keras")
        keras.applications.MobileNetV2(weights=None).save(path)
    model = load_image_model(path)
    height, width = model.input_size
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, (args.batch_size, height, width, 3)).astype(np.float32)
    t_row, t_single = _rates(model, batch, args.rounds, args.calls)
    rows = [
        estimate(t_row, t_single, n, 0.01, 300, args.workers, args.report_seconds)
        for n in JOB_SIZES
    ]
    rows.append(estimate(t_row, t_single, 1_500, 0.05, 0, args.workers, args.report_seconds))
    print(
        json.dumps(
            {
                "model": args.model or "MobileNetV2(weights=None)",
                "batch_size": args.batch_size,
                "row_ms": 1e3 * t_row,
                "single_ms": 1e3 * t_single,
                "single_over_row": t_single / t_row,
                "estimates": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
