"""``--skip_existing`` at scale: reruns that skip every image, as files and from TFRecord shards.

    python -m benchmarks.skip_existing [--images 2000 10000] [--work out/bench_skip]

Scores the larger set of the corpus's 640x480 photo JPEGs (``benchmarks.corpus``, ~62 KB each,
hard-linked to distinct names) once as files with the tiny model and no reconciliation, packs
the same files into TFRecord shards of 500 (``pipeline.shard`` keeps each file's URI as its
key), then reruns the job with ``--skip_existing`` of that first output over the smaller and
the larger set (manifests of the first files or shards), as files and from shards. Every rerun
must score 0 and skip every image. Reports wall time, peak RSS of the process tree and CPU per
image: a skip that carries image bytes through its join grows with the images; one that joins
keys only stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

from benchmarks import corpus, jobs
from benchmarks.run import ROOT


def _job(work: str, name: str, model: str, *flags: str) -> tuple[dict, dict]:
    record, outcome = jobs.score(work, name, model, *flags)
    return record, {
        "name": name,
        "images": record["matched"],
        "scored": record["scored"],
        "skipped": record["skipped"],
        "wall_seconds": round(outcome.wall_seconds, 1),
        "peak_rss_mib": round(outcome.peak_rss_mib),
        "cpu_ms_per_image": round(1000 * outcome.cpu_seconds / record["matched"], 2),
    }


def _manifest(path: str, lines: list[str]) -> str:
    with open(path, "w") as f:
        f.writelines(f"{line}\n" for line in lines)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "out", "bench_skip"))
    parser.add_argument("--images", type=int, nargs=2, default=(2000, 10000))
    args = parser.parse_args(argv)
    from pipeline.shard import write_shards

    work = os.path.abspath(args.work)
    small, large = args.images
    model = corpus.save_tiny_model(os.path.join(work, "models"))
    unique = corpus.write_corpus(os.path.join(work, "photos"), 1500)
    pattern = corpus.linked_set(work, f"linked_{large}", unique, large)
    files = sorted(os.path.join(os.path.dirname(pattern), n)
                   for n in os.listdir(os.path.dirname(pattern)) if n.endswith(".jpg"))  # fmt: skip
    shard_dir = os.path.join(work, f"shards_{large}")
    if not os.path.exists(os.path.join(shard_dir, "DONE")):
        shutil.rmtree(shard_dir, ignore_errors=True)
        write_shards([pattern], shard_dir, "tfrecord", 500)
        open(os.path.join(shard_dir, "DONE"), "w").close()
    shards = sorted(os.path.join(shard_dir, n) for n in os.listdir(shard_dir) if "shard-" in n)

    _, row = _job(work, "first", model, "--input", pattern)
    rows = [row]
    for count in (small, large):
        sources = {
            "files": ["--input_manifest",
                      _manifest(os.path.join(work, f"files_{count}.txt"), files[:count])],
            "tfrecord": ["--input_format", "tfrecord", "--input_manifest",
                         _manifest(os.path.join(work, f"shards_{count}.txt"),
                                   shards[: count // 500])],
        }  # fmt: skip
        for fmt, flags in sources.items():
            name = f"skip_{fmt}_{count}"
            flags = [*flags, "--skip_existing", os.path.join(work, "out", "first")]
            record, row = _job(work, name, model, *flags)
            if (record["scored"], record["skipped"]) != (0, count):
                raise SystemExit(f"{name}: scored {record['scored']}, skipped {record['skipped']}")
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| run | images | scored | skipped | wall s | peak RSS MiB | CPU ms/img |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['name']} | {row['images']:,} | {row['scored']:,} | {row['skipped']:,} | "
            f"{row['wall_seconds']} | {row['peak_rss_mib']} | {row['cpu_ms_per_image']} |"
        )


if __name__ == "__main__":
    main()
