"""The LIMIT: the same decode, resize and model call in a tight TensorFlow loop, no Beam.

    python -m benchmarks.limit --model M.keras --input 'DIR/*.jpg' --batch_size 32 [--limit N]

tf.data reads the files, maps the repository's own ``transforms.core.preprocess.preprocess_image``
over them in parallel (AUTOTUNE), batches and prefetches; the model is called through the same
kind of traced ``tf.function`` the pipeline uses (``transforms.core.model_reading``). Reports
whole-process and steady-state (images after the first 20%) throughput on stdout as one JSON line.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time

T0 = time.time()  # before TensorFlow is imported: whole-process figures include start-up


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N files")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from transforms.core.model_facts import resolve_spec
    from transforms.core.model_reading import load_image_model
    from transforms.core.preprocess import preprocess_image

    paths = sorted(glob.glob(args.input))
    if args.limit:
        paths = paths[: args.limit]
    model = load_image_model(args.model)
    spec = resolve_spec(model, None, None)
    dataset = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(tf.io.read_file, num_parallel_calls=tf.data.AUTOTUNE)
        .map(lambda b: preprocess_image(b, spec), num_parallel_calls=1)
        .batch(args.batch_size)
        .prefetch(2)
    )
    marks = []  # (images done, time) after every batch
    done = 0
    checksum = 0.0
    last_print = 0.0
    for batch in dataset:
        scores = model.score_fn(batch).numpy()  # the traced model call of the pipeline
        checksum += float(scores[:, 0].sum())
        done += len(scores)
        marks.append((done, time.time()))
        if marks[-1][1] - last_print >= 2.0:  # the progress line the harness timestamps
            last_print = marks[-1][1]
            sys.stderr.write(f"\r  scored {done:,} images ")
            sys.stderr.flush()
    end = time.time()
    first = next(m for m in marks if m[0] >= 0.2 * done)
    print(
        json.dumps(
            {
                "images": done,
                "wall_seconds": end - T0,
                "steady_images_per_second": (done - first[0]) / (end - first[1]),
                "checksum": checksum,
            }
        )
    )


if __name__ == "__main__":
    main()
