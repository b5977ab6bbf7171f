"""How long each command takes to answer --help, as a user runs it (a fresh interpreter).

    python -m benchmarks.cli_help [--repeat 5]

The target is under 3 s per command: help is answered from ``pipeline.cli``'s tables before
Beam (~2 s to import) or TensorFlow (~5 s) is loaded. Prints one line per command: the median
and the slowest of ``--repeat`` runs, and whether Beam or TensorFlow got imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = (
    "pipeline.run",
    "pipeline.export",
    "pipeline.predict_one",
    "pipeline.demo",
    "pipeline.compare",
    "pipeline.shard",
)
LIMIT_SECONDS = 3.0
# Runs the module as `python -m` does, then says which heavy libraries were imported.
_PROBE = (
    "import runpy, sys\n"
    "sys.argv = [sys.argv[1], '--help']\n"
    "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "print('HEAVY', 'tensorflow' in sys.modules, 'apache_beam' in sys.modules, file=sys.stderr)\n"
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    for module in COMMANDS:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", module, "--help"], env=env, capture_output=True, check=True
            )
            times.append(time.perf_counter() - start)
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, module], env=env, capture_output=True, text=True
        )
        heavy = probe.stderr.split("HEAVY")[-1].split()
        verdict = "ok" if max(times) < LIMIT_SECONDS else "OVER"
        print(
            f"python -m {module} --help: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s over {args.repeat} runs ({verdict}, limit "
            f"{LIMIT_SECONDS:.0f} s); {len(result.stdout.splitlines())} lines; "
            f"imports TensorFlow: {heavy[0]}, Beam: {heavy[1]}"
        )


if __name__ == "__main__":
    main()
