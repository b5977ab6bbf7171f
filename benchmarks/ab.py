"""Interleaved A/B of ``python -m pipeline.run`` from several source trees: before/after figures.

    python -m benchmarks.ab --tree before=DIR --tree after=. [--rounds 3] [--images 600]
        [--fraction 0.05] [--model mobilenetv2]

Each round runs every tree once, in turn, on the same images and model (the corpus of
``benchmarks.run``), so slow drifts in the shared machine's load hit all trees alike. Reports,
per tree, the best and median wall time and CPU per image, and every tree's ratio to the first
(best-of-rounds rates: interference only ever slows a run down, so the best run is the closest
to the machine's real speed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

from benchmarks import corpus, procwatch
from benchmarks.run import ROOT, _env


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--model", default="MobileNetV2", help="MobileNetV2, ResNet50, TinyConv")
    parser.add_argument("--work", default=os.path.join(ROOT, "out", "bench"))
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    trees = [
        (name, os.path.abspath(path)) for name, _, path in (t.partition("=") for t in args.tree)
    ]
    corpus_dir = os.path.join(work, "corpus")
    unique = corpus.write_corpus(corpus_dir, max(args.images, 2000))
    images = corpus.linked_set(corpus_dir, f"set{args.images}", unique, args.images)
    if args.model == "TinyConv":
        model = corpus.save_tiny_model(os.path.join(work, "models"))
    else:
        model = corpus.save_models(os.path.join(work, "models"))[args.model]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trees}
    for round_ in range(args.rounds):
        for name, tree in trees:
            out = os.path.join(work, "out", f"ab_{name}")
            shutil.rmtree(out, ignore_errors=True)
            command = [
                sys.executable, "-m", "pipeline.run", "--input", images, "--model", model,
                "--output", out, "--reconcile_fraction", str(args.fraction),
            ]  # fmt: skip
            outcome = procwatch.run(command, env=_env(tree), cwd=tree)
            if outcome.returncode != 0:
                raise SystemExit(f"{name} failed:\n{outcome.tail}")
            cpu_ms = 1000 * outcome.cpu_seconds / args.images
            runs[name].append((outcome.wall_seconds, cpu_ms))
            print(
                f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} {name}: "
                f"{outcome.wall_seconds:.1f} s, {cpu_ms:.1f} CPU ms/image, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    first = trees[0][0]
    summary = {}
    for name, _ in trees:
        walls, cpus = [w for w, _ in runs[name]], [c for _, c in runs[name]]
        summary[name] = {
            "best_wall_s": round(min(walls), 2),
            "median_wall_s": round(statistics.median(walls), 2),
            "best_images_per_s": round(args.images / min(walls), 2),
            "median_cpu_ms_per_image": round(statistics.median(cpus), 1),
        }
    for name, _ in trees:
        summary[name]["speed_vs_" + first] = round(
            summary[first]["best_wall_s"] / summary[name]["best_wall_s"], 3
        )
    print(json.dumps({"images": args.images, "model": args.model, "runs": runs,
                      "summary": summary}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
