"""Reading alone: the files reader vs the TFRecord reader, in one process, into a count.

    python -m benchmarks.read_formats [--rounds 5] [--work out/bench_shards]

The job's other stages (decoding, the model) are the same for both inputs, so this measures
what the input format changes: ``ReadImages`` over the photo JPEGs vs ``ReadTFRecordImages``
over the same photos in TFRecord shards of 250 (both passes: keys, then images), each on a
fresh DirectRunner pipeline whose only other step counts the images. Two sizes: the 1,500
photos of ``benchmarks.shards`` (pipeline set-up weighs) and its 20,000 tiny JPEGs in shards of
2,000 (the per-record cost). Run ``benchmarks.shards`` first: it makes and caches both corpora.
Rounds alternate which reader goes first; reports the median wall and CPU seconds per reader
and the ratio of files to TFRecord seconds (above 1: shards read faster).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

from benchmarks.run import ROOT


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _time(reader, expected: int) -> tuple[float, float]:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    wall, cpu = time.perf_counter(), _cpu()
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
        images = (pipeline | reader).images
        assert_that(images | beam.combiners.Count.Globally(), equal_to([expected]))
    return time.perf_counter() - wall, _cpu() - cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "out", "bench_shards"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--tiny", type=int, default=20000)
    args = parser.parse_args(argv)
    import tensorflow  # noqa: F401 - imported first, as in the job

    from transforms.score.read_files import ReadImages
    from transforms.score.read_shards import ReadTFRecordImages

    work = os.path.abspath(args.work)
    photos, tiny = args.images, args.tiny
    sets = {
        photos: (f"{work}/photos/unique/*.jpg", f"{work}/photo_shards_{photos}/*.tfrecord"),
        tiny: (f"{work}/tiny_{tiny}/*.jpg", f"{work}/tiny_shards_{tiny}/*.tfrecord"),
    }
    print("| images | reader | median wall s | median CPU s | files/tfrecord (wall, CPU) |")
    print("|---:|---|---:|---:|---:|")
    for count, (files, shards) in sets.items():
        readers = {
            "files": lambda files=files: ReadImages([files]),
            "tfrecord": lambda shards=shards: ReadTFRecordImages([shards]),
        }
        times = {name: [] for name in readers}
        _time(readers["files"](), count)  # warm the page cache and Beam's imports
        for i in range(args.rounds):
            for name in sorted(readers, reverse=bool(i % 2)):
                times[name].append(_time(readers[name](), count))
        medians = {
            name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
            for name, runs in times.items()
        }
        (fw, fc), (tw, tc) = medians["files"], medians["tfrecord"]
        for name, (wall, cpu) in medians.items():
            ratio = f"{fw / tw:.2f}, {fc / tc:.2f}" if name == "tfrecord" else ""
            print(f"| {count:,} | {name} | {wall:.2f} | {cpu:.2f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
