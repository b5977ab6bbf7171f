"""Peak RSS of a job over one large Parquet row group against a normal job (issue 25 item 16).

    python -m benchmarks.parquet_row_group [--rows 5000] [--row_bytes 100000] [--code DIR]

Writes a Parquet file with pyarrow's defaults (one row group of ``--rows`` rows of random bytes
in a struct ``image {bytes, path}``, so every row is a decode error) and a normal one of 50 such
rows, then scores each with ``python -m pipeline.run --input_format parquet ... --model
data/demo_bundle --reconcile_fraction 0`` on DirectRunner, one after the other. The peak RSS is
the job process's own ``ru_maxrss`` (``os.wait4``; the files are written by another process,
so this one stays small). ``--code`` runs another checkout's code
(e.g. main's, for a before/after in one session). Prints both peaks and their ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path: str, rows: int, row_bytes: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    values = [{"bytes": os.urandom(row_bytes), "path": f"img{i:06d}.png"} for i in range(rows)]
    pq.write_table(pa.table({"image": pa.array(values, image_type)}), path)


def _peak_mib(code: str, shard: str, output: str) -> float:
    command = [sys.executable, "-m", "pipeline.run", "--input_format", "parquet"]
    command += ["--input", shard, "--model", os.path.join(REPO, "data", "demo_bundle")]
    command += ["--output", output, "--reconcile_fraction", "0"]
    env = dict(os.environ, PYTHONPATH=code, TF_CPP_MIN_LOG_LEVEL="3")
    job = subprocess.Popen(command, cwd=code, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(job.pid, 0)
    job.returncode = os.waitstatus_to_exitcode(status)
    # 4: nothing was scored (every row is random bytes), the outcome expected here.
    if job.returncode not in (0, 4):
        raise SystemExit(f"the job over {shard} failed with status {job.returncode}")
    return usage.ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--row_bytes", type=int, default=100_000)
    parser.add_argument("--code", default=REPO, help="the checkout whose code runs the jobs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rowgroup-") as root:
        normal, big = os.path.join(root, "normal.parquet"), os.path.join(root, "big.parquet")
        # Written by another process: a child's peak RSS counts what it was before its exec,
        # i.e. this process's at the fork, which must stay small.
        spawn = multiprocessing.get_context("spawn")
        for path, rows in ((normal, 50), (big, args.rows)):
            writer = spawn.Process(target=_write, args=(path, rows, args.row_bytes))
            writer.start()
            writer.join()
        size_mb = os.path.getsize(big) / 1e6
        normal_peak = _peak_mib(args.code, normal, os.path.join(root, "out-normal"))
        big_peak = _peak_mib(args.code, big, os.path.join(root, "out-big"))
    print(f"normal job (50 rows):             peak RSS {normal_peak:8.1f} MiB")
    print(f"one row group ({size_mb:,.0f} MB, {args.rows} rows): peak RSS {big_peak:8.1f} MiB")
    print(f"ratio {big_peak / normal_peak:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
