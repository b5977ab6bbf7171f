"""Profiles one in-process DirectRunner run of ``pipeline.run`` with pyinstrument.

    python -m benchmarks.profile --images 300 [--fraction 0.05] [--model PATH]

Uses the benchmark corpus (``python -m benchmarks.run`` creates it) and writes a text profile
to stdout and ``WORK/profile.txt``/``profile.html``. The DirectRunner runs bundles in this
process, so the profile covers start-up, decode, the model call and the writes alike. For
native frames (inside TensorFlow) use py-spy instead:

    py-spy record --native -o out.svg -- python -m pipeline.run ...
"""

from __future__ import annotations

import argparse
import os
import shutil


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default=os.path.join("out", "bench"))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from pyinstrument import Profiler

    from benchmarks import corpus

    corpus_dir = os.path.join(args.work, "corpus")
    unique = corpus.write_corpus(corpus_dir, max(args.images, 2000))
    images = corpus.linked_set(corpus_dir, f"set{args.images}", unique, args.images)
    model = args.model or corpus.save_models(os.path.join(args.work, "models"))["MobileNetV2"]
    out = os.path.join(args.work, "out", "profile")
    shutil.rmtree(out, ignore_errors=True)
    profiler = Profiler(interval=0.002)
    profiler.start()
    from pipeline import run

    run.main(
        ["--input", images, "--model", model, "--output", out,
         "--reconcile_fraction", str(args.fraction)]
    )  # fmt: skip
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    with open(os.path.join(args.work, "profile.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(args.work, "profile.html"), "w") as f:
        f.write(profiler.output_html())
    print(text)


if __name__ == "__main__":
    main()
