"""Sharded inputs: reading photos from TFRecord shards vs as files, and memory at 20,000.

    python -m benchmarks.shards [--images 1500] [--memory_images 2000 20000] [--repeat 2]

1. Throughput: the corpus's 640x480 photo JPEGs (``benchmarks.corpus``) scored by the job as
   files (``--input DIR/*.jpg``) and from TFRecord shards of 250 made by ``pipeline.shard``, with
   the tiny 224x224 model and no reconciliation, so reading and decoding dominate; each round
   runs both (alternating which goes first), ``--repeat`` rounds; the best runs and the median
   of the rounds' ratios are compared.
2. Memory: peak RSS of the job over 2,000 and 20,000 tiny distinct JPEGs (64x48) in TFRecord
   shards of 2,000: flat memory means the larger run's peak is close to the smaller's.

Each run is a fresh subprocess watched by ``benchmarks.procwatch`` (wall time from spawn to
exit, peak RSS of the process tree). Prints a markdown table; corpus and shards are cached
under ``--work``, named by their image counts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics

import numpy as np

from benchmarks import corpus, jobs
from benchmarks.run import ROOT


def _shards(work: str, name: str, pattern: str, per_shard: int) -> str:
    from pipeline.shard import write_shards

    target = os.path.join(work, name)
    if not os.path.exists(os.path.join(target, "DONE")):
        shutil.rmtree(target, ignore_errors=True)
        write_shards([pattern], target, "tfrecord", per_shard)
        open(os.path.join(target, "DONE"), "w").close()
    return os.path.join(target, "*.tfrecord")


def _tiny_jpegs(directory: str, count: int) -> str:
    """``count`` distinct 64x48 JPEGs of noise over gradients (cached)."""
    from PIL import Image

    done = os.path.join(directory, "DONE")
    if not os.path.exists(done):
        os.makedirs(directory, exist_ok=True)
        rng = np.random.default_rng(0)
        base = np.mgrid[0:48, 0:64][1][..., None] * 4
        for i in range(count):
            pixels = np.clip(base + rng.normal(0, 30, (48, 64, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
            with open(os.path.join(directory, f"t_{i:06d}.jpg"), "wb") as f:
                f.write(buffer.getvalue())
        open(done, "w").close()
    return os.path.join(directory, "*.jpg")


def _job(work: str, name: str, model: str, count: int, *flags: str) -> dict:
    record, outcome = jobs.score(work, name, model, *flags)
    if record["scored"] != count:
        raise SystemExit(f"{name}: scored {record['scored']} of {count}")
    row = {
        "name": name,
        "images": count,
        "wall_seconds": round(outcome.wall_seconds, 1),
        "images_per_second": round(count / outcome.wall_seconds, 1),
        "peak_rss_mib": round(outcome.peak_rss_mib),
        "cpu_ms_per_image": round(1000 * outcome.cpu_seconds / count, 2),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "out", "bench_shards"))
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--memory_images", type=int, nargs=2, default=(2000, 20000))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    model = corpus.save_tiny_model(os.path.join(work, "models"))
    photos = corpus.write_corpus(os.path.join(work, "photos"), args.images)
    files = os.path.join(os.path.dirname(photos[0]), "*.jpg")
    shards = _shards(work, f"photo_shards_{args.images}", files, 250)
    variants = {
        "files": ("--input", files),
        "tfrecord": ("--input_format", "tfrecord", "--input", shards),
    }
    rows, rates = [], {name: [] for name in variants}
    for i in range(args.repeat):
        # Each round runs both, the first alternating, so drifts in load hit both alike.
        for name in sorted(variants, reverse=bool(i % 2)):
            row = _job(work, f"photos/{name}#{i}", model, args.images, *variants[name])
            rows.append(row)
            rates[name].append(row["images_per_second"])
    small, large = args.memory_images
    tiny = _tiny_jpegs(os.path.join(work, f"tiny_{large}"), large)
    all_shards = _shards(work, f"tiny_shards_{large}", tiny, 2000)
    # The smaller run reads the first shards (of 2,000 each), listed in a manifest.
    names = sorted(os.listdir(os.path.dirname(all_shards)))
    first = [os.path.join(os.path.dirname(all_shards), n) for n in names if "shard-" in n]
    manifest = os.path.join(work, "few.txt")
    with open(manifest, "w") as f:
        f.writelines(f"{path}\n" for path in first[: small // 2000])
    for count, source in (
        (small, ["--input_manifest", manifest]),
        (large, ["--input", all_shards]),
    ):
        rows.append(
            _job(work, f"memory/tfrecord[{count}]", model, count,
                 "--input_format", "tfrecord", *source)
        )  # fmt: skip
    print("\n| run | images | wall s | img/s | peak RSS MiB | CPU ms/img |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['name']} | {row['images']:,} | {row['wall_seconds']} | "
            f"{row['images_per_second']} | {row['peak_rss_mib']} | {row['cpu_ms_per_image']} |"
        )
    ratios = [t / f for f, t in zip(rates["files"], rates["tfrecord"], strict=True)]
    print(
        f"\ntfrecord/files throughput: best {max(rates['tfrecord']) / max(rates['files']):.3f}, "
        f"median of rounds {statistics.median(ratios):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
