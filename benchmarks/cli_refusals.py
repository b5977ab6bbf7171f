"""How long the scoring job takes to refuse a bad command line, this tree against another.

    python -m benchmarks.cli_refusals [--before /path/to/other/checkout]

Each case runs ``python -m pipeline.run`` in a fresh interpreter three times per tree (the
median is printed), in a scratch directory holding a non-empty ``FULL/``; the ratio is within
one run, so a noisy machine cancels out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "misspelt flag": ["--input", "x/*.png", "--output", "o", "--batch-size", "8"],
    "missing --output": ["--input", "x/*.png"],
    "existing output": ["--input", "x/*.png", "--output", "FULL"],
    "bad value (--batch_size 0)": ["--input", "x/*.png", "--output", "o", "--batch_size", "0"],
}


def _median_seconds(tree: str, argv: list[str], cwd: str) -> float:
    env = {**os.environ, "PYTHONPATH": tree, "TF_CPP_MIN_LOG_LEVEL": "3"}
    times = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.run", *argv], env=env, cwd=cwd, capture_output=True
        )
        times.append(time.perf_counter() - start)
        assert done.returncode == 2, (tree, done.stderr)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="the checkout to compare with")
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as scratch:
        os.makedirs(os.path.join(scratch, "FULL"))
        with open(os.path.join(scratch, "FULL", "notes.txt"), "w") as f:
            f.write("mine")
        for case, command in CASES.items():
            before = _median_seconds(args.before, command, scratch)
            after = _median_seconds(here, command, scratch)
            print(f"{case}: before {before:.2f} s, this tree {after:.2f} s ({before / after:.1f}x)")


if __name__ == "__main__":
    main()
