"""Cost of comparing two runs: ``python -m benchmarks.compare [--predictions 200000]``.

Writes two synthetic runs straight to disk (prediction records with full score vectors, as
``--write_scores`` writes them, sharded like the job, with a run.json each): the candidate is the
baseline with ulp-level noise on most keys, a top-1 flip on 1% and 0.5% of keys missing. Then
runs ``python -m pipeline.compare`` on them as a fresh subprocess on the DirectRunner and reports
wall time (spawn to exit) and the peak RSS of the whole process tree (``benchmarks.procwatch``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

from benchmarks import procwatch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_run(directory: str, scores: np.ndarray, keep: np.ndarray, shards: int, batch: int):
    os.makedirs(os.path.join(directory, "predictions"), exist_ok=True)
    keys = np.flatnonzero(keep)
    for shard, part in enumerate(np.array_split(keys, shards)):
        name = f"part-{shard:05d}-of-{shards:05d}.jsonl"
        with open(os.path.join(directory, "predictions", name), "w") as f:
            for i in part:
                row = scores[i]
                top = np.argsort(-row, kind="stable")[:5]
                key = f"gs://bucket/images/{i:08d}.jpg"
                record = {
                    "key": key,
                    "uri": key,
                    "top_k": [
                        {"index": int(j), "label": str(j), "score": float(row[j])} for j in top
                    ],
                    "scores": row.tolist(),
                    "batch_size": batch,
                    "batch_id": f"{i // batch:08x}",
                    "position": int(i % batch),
                    "model_digest": "sha256:synthetic",
                }
                f.write(json.dumps(record, sort_keys=True) + "\n")
    run = {
        "model_digest": "sha256:synthetic",
        "preprocessing": {"normalization": "symmetric"},
        "options": {"batch_size": batch, "pad_batches": False, "deterministic": False},
        "package_versions": {"tensorflow": "2.21.0"},
    }
    with open(os.path.join(directory, "run.json"), "w") as f:
        json.dump(run, f)


def make_runs(work: str, count: int, classes: int, shards: int) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(count, classes)).astype(np.float32)
    baseline = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    candidate = baseline + rng.normal(scale=1e-7, size=baseline.shape).astype(np.float32)
    flips = rng.random(count) < 0.01
    candidate[flips] = candidate[flips][:, ::-1]  # reversed classes: another top-1
    paths = os.path.join(work, "baseline"), os.path.join(work, "candidate")
    _write_run(paths[0], baseline, np.ones(count, bool), shards, 8)
    _write_run(paths[1], candidate.astype(np.float32), rng.random(count) >= 0.005, shards, 32)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--work", default=os.path.join(ROOT, "out", "bench_compare"))
    parser.add_argument("--direct_num_workers", type=int, default=1)
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    baseline, candidate = make_runs(args.work, args.predictions, args.classes, args.shards)
    size = sum(
        os.path.getsize(os.path.join(baseline, "predictions", n))
        for n in os.listdir(os.path.join(baseline, "predictions"))
    )
    command = [
        sys.executable,
        "-m",
        "pipeline.compare",
        "--baseline",
        baseline,
        "--candidate",
        candidate,
        "--output",
        os.path.join(args.work, "comparison"),
        f"--direct_num_workers={args.direct_num_workers}",
    ]
    outcome = procwatch.run(command, cwd=ROOT, log_path=os.path.join(args.work, "compare.log"))
    with open(os.path.join(args.work, "comparison", "summary.json")) as f:
        summary = json.load(f)
    print("\n".join(outcome.tail.strip().splitlines()[-6:]))
    print(
        f"compared {args.predictions:,} predictions x {args.classes} classes "
        f"({size / 2**20:.0f} MiB of JSONL per run): exit {outcome.returncode}, "
        f"{outcome.wall_seconds:.1f} s wall (spawn to exit), peak RSS {outcome.peak_rss_mib:.0f} "
        f"MiB, {outcome.cpu_seconds:.1f} CPU s; {summary['compared']:,} compared, "
        f"{summary['only_baseline']:,} only in baseline, {summary['top1_flips']:,} flips"
    )
    return outcome.returncode


if __name__ == "__main__":
    sys.exit(main())
