"""The PEER: plain Beam image classification, the way Beam's own examples write it.

    python -m benchmarks.peer --model M.keras --input 'DIR/*.jpg' --output DIR

As in ``apache_beam/examples/inference/pytorch_image_classification.py`` and
``tensorflow_imagenet_segmentation.py``: read each file through ``FileSystems`` and decode and
resize it with Pillow in a ``beam.Map``, normalise with numpy, then ``RunInference`` with
``TFModelHandlerNumpy`` (default adaptive batching; the handler loads the ``.keras`` file with
``tf.keras.models.load_model`` and calls the model eagerly on ``numpy.stack(batch)``), then
top-1 per element written with ``WriteToText``. Normalisation is ours (x/127.5 - 1) so both
jobs do the same arithmetic; Pillow's bilinear resize stands in for ``tf.image.resize``.

Beam's TensorFlow handler module imports ``tensorflow_hub`` only to call ``hub.resolve`` on the
model path; it is not installed here, so an identity ``resolve`` stands in (the path is local).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import types

T0 = time.time()


class Progress:
    """Prints 'scored N images' to stderr every 2 s, as the pipeline's own reporter does."""

    done = 0
    last = 0.0

    @classmethod
    def update(cls, count: int) -> None:
        cls.done += count
        now = time.monotonic()
        if now - cls.last >= 2.0:
            cls.last = now
            sys.stderr.write(f"\r  scored {cls.done:,} images ")
            sys.stderr.flush()


def read_image(path: str):
    import numpy as np
    from apache_beam.io.filesystems import FileSystems
    from PIL import Image

    with FileSystems.open(path) as f:
        image = Image.open(io.BytesIO(f.read())).convert("RGB")
    image = image.resize((224, 224), Image.Resampling.BILINEAR)
    return (np.asarray(image, np.float32) / 127.5 - 1.0).astype(np.float32)


def top1(result) -> str:
    import numpy as np

    Progress.update(1)
    return str(int(np.argmax(result.inference)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args, beam_args = parser.parse_known_args(argv)

    sys.modules.setdefault("tensorflow_hub", types.SimpleNamespace(resolve=lambda path: path))
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy
    from apache_beam.options.pipeline_options import PipelineOptions

    handler = TFModelHandlerNumpy(model_uri=args.model).with_preprocess_fn(read_image)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        _ = (
            pipeline
            | "MatchFiles" >> beam.io.fileio.MatchFiles(args.input)
            | "TakePaths" >> beam.Map(lambda metadata: metadata.path)
            | "Reshuffle" >> beam.Reshuffle()
            | "RunInference" >> RunInference(handler)
            | "Top1" >> beam.Map(top1)
            | "Write" >> beam.io.WriteToText(args.output)
        )


if __name__ == "__main__":
    main()
