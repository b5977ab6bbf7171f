"""Peak memory of a job that meets a huge file: it must cost no more than a normal image.

    python -m benchmarks.oversized_file [--size_gb 3] [--images 20]

Runs the real job twice on DirectRunner, as a subprocess watched by ``benchmarks.procwatch``
(summed RSS of the process tree, polled every 0.1 s): over ``--images`` sample images, then
over the same images plus a sparse file of ``--size_gb`` GB named like an image (holes: it
takes no disk). Before reads were capped, such a file cost its full size in RSS (+3.1 GB for
3 GB). Now it is refused from its size before it is opened (``file_too_large``), so the two
peaks should match within noise. Prints both peaks, the difference and the huge file's record.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile

from benchmarks import procwatch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _job(images: str, output: str) -> procwatch.Outcome:
    command = [sys.executable, "-m", "pipeline.run", "--input", f"{images}/*", "--output", output]
    env = dict(os.environ, PYTHONPATH=REPO)
    outcome = procwatch.run(command, env=env, cwd=REPO)
    if outcome.returncode != 0:
        raise SystemExit(f"the job failed:\n{outcome.tail}")
    return outcome


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size_gb", type=float, default=3.0)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args(argv)
    samples = sorted(glob.glob(os.path.join(REPO, "data", "sample", "*", "*.png")))[: args.images]
    with tempfile.TemporaryDirectory(prefix="oversized-") as root:
        images = os.path.join(root, "images")
        os.makedirs(images)
        for i, path in enumerate(samples):
            shutil.copy(path, os.path.join(images, f"{i:04d}.png"))
        baseline = _job(images, os.path.join(root, "baseline"))
        huge = os.path.join(images, "huge.png")
        with open(huge, "wb") as f:
            f.truncate(int(args.size_gb * 1e9))
        with_huge = _job(images, os.path.join(root, "with_huge"))
        errors = []
        for shard in glob.glob(os.path.join(root, "with_huge", "errors", "part-*.jsonl")):
            with open(shard) as f:
                errors.extend(json.loads(line) for line in f if line.strip())
    print(f"{len(samples)} images:                   peak RSS {baseline.peak_rss_mib:8.1f} MiB")
    print(
        f"{len(samples)} images + {args.size_gb:g} GB sparse file: "
        f"peak RSS {with_huge.peak_rss_mib:8.1f} MiB "
        f"({with_huge.peak_rss_mib - baseline.peak_rss_mib:+.1f} MiB)"
    )
    for error in errors:
        print(f"record: {error['reason']}: {error['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
