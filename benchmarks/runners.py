"""The same job on every runner: speed as a ratio to in-process, and how full the batches are.

    python -m benchmarks.runners [--images 1500] [--work out/bench_runners]

Scores the corpus's 640x480 photo JPEGs (``benchmarks.corpus``) with MobileNetV2 (random weights)
at ``--batch_size 32``, no reconciliation, each runner a fresh ``python -m pipeline.run``:
in-process (DirectRunner), multi-process (2 workers), Python's portable job service with
EXTERNAL worker processes (both services started here on loopback ports, and counted in the
time), Prism and Flink ``[local]`` (parallelism 2) when ``scripts/fetch_runners.sh`` fetched
them. Reports whole-process wall time (start-up included), images/s, the ratio to in-process,
and the batch fill: the model calls (distinct batch ids of the predictions) and the share that
were full. With ``--rounds K`` the runners take turns K times (the machine's load drifts:
compare rows of one round). Results go to stdout and ``WORK/results.json``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import json
import os
import socket
import subprocess
import sys
import time

from benchmarks import corpus, jobs
from benchmarks.run import ROOT, _env

RUNNERS_DIR = os.path.join(ROOT, ".cache", "runners")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _service(module: str, *args: str):
    """``python -m MODULE ARGS`` until the block ends; waits until its port (the last arg)
    accepts connections."""
    process = subprocess.Popen([sys.executable, "-m", module, *args], env=_env(), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    address = ("127.0.0.1", int(args[-1]))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(address, 1):
                break
            time.sleep(0.5)
        else:
            raise SystemExit(f"{module} did not start")
        yield
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


@contextlib.contextmanager
def _portable():
    job_port, worker_port = _free_port(), _free_port()
    with (
        _service("apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)),
        _service("apache_beam.runners.worker.worker_pool_main", "--service_port", str(worker_port)),
    ):
        yield ["--runner", "PortableRunner", "--job_endpoint", f"localhost:{job_port}",
               "--environment_type", "EXTERNAL",
               "--environment_config", f"localhost:{worker_port}"]  # fmt: skip


def _runners() -> list[tuple[str, object]]:
    """(name, flags or a context manager yielding them), the ones this machine has."""
    runners = [
        ("in-process", []),
        (
            "multi-process x2",
            ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
        ),  # fmt: skip
        ("portable EXTERNAL", _portable),
    ]
    prism = os.path.join(RUNNERS_DIR, "prism")
    if os.access(prism, os.X_OK):
        runners.append(("Prism", ["--runner", "PrismRunner", "--prism_location", prism]))
    else:
        print(f"Prism: skipped, no {prism} (scripts/fetch_runners.sh)")
    jars = sorted(glob.glob(os.path.join(RUNNERS_DIR, "beam-runners-flink-*-job-server-*.jar")))
    if jars:
        runners.append(("Flink [local] x2", ["--runner", "FlinkRunner", "--flink_master", "[local]",
                        "--flink_job_server_jar", jars[-1], "--parallelism", "2"]))  # fmt: skip
    else:
        print(f"Flink: skipped, no job server jar in {RUNNERS_DIR} (scripts/fetch_runners.sh)")
    return runners


def batch_fill(output: str, batch_size: int) -> dict:
    """Model calls of a run (distinct batch ids of its predictions) and how many were full."""
    sizes = {}
    for path in glob.glob(os.path.join(output, "predictions", "*.jsonl")):
        with open(path) as f:
            for line in f:
                prediction = json.loads(line)
                sizes[prediction["batch_id"]] = prediction["batch_size"]
    full = sum(size == batch_size for size in sizes.values())
    return {
        "model_calls": len(sizes),
        "full_calls": full,
        "full_share": round(full / len(sizes), 3) if sizes else None,
        "short_sizes": sorted(size for size in sizes.values() if size != batch_size),
        "sizes": dict(collections.Counter(sizes.values())),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--work", default=os.path.join(ROOT, "out", "bench_runners"))
    parser.add_argument("--only", help="comma-separated runner names, e.g. in-process,Prism")
    parser.add_argument("--rounds", type=int, default=1, help="run the runners in turn K times")
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    unique = corpus.write_corpus(os.path.join(work, "corpus"), min(args.images, 300))
    images = corpus.linked_set(os.path.join(work, "corpus"), f"set{args.images}", unique,
                               args.images)  # fmt: skip
    model = corpus.save_models(os.path.join(work, "models"), ("MobileNetV2",))["MobileNetV2"]
    runners = _runners()
    if args.only:
        runners = [(name, flags) for name, flags in runners if name in args.only.split(",")]
    rows = []
    for name, flags in runners * args.rounds:
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {args.images} images ...", flush=True)
        with flags() if callable(flags) else contextlib.nullcontext(flags) as runner_flags:
            started = time.monotonic()
            record, outcome = jobs.score(work, name, model, "--input", images, *runner_flags)
            wall = time.monotonic() - started
        if record["scored"] != args.images:
            raise SystemExit(f"{name}: scored {record['scored']} of {args.images}")
        out = os.path.join(work, "out", name.replace("[", "_").replace("]", ""))
        row = {"runner": name, "wall_seconds": round(wall, 1),
               "images_per_second": round(args.images / wall, 2),
               "job_images_per_second": record["images_per_second"],
               "cpu_ms_per_image": round(1000 * outcome.cpu_seconds / args.images, 1),
               **batch_fill(out, 32)}  # fmt: skip
        rows.append(row)
        print(f"    {json.dumps(row)}", flush=True)
    base = rows[0]["images_per_second"]
    print("\n| runner | wall s | images/s | vs in-process | model calls | full | short sizes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runner']} | {r['wall_seconds']} | {r['images_per_second']} | "
              f"{r['images_per_second'] / base:.2f}x | {r['model_calls']} | "
              f"{r['full_calls']} ({r['full_share']:.1%}) | {r['short_sizes']} |")  # fmt: skip
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"images": args.images, "load_average": os.getloadavg(), "rows": rows}, f,
                  indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
