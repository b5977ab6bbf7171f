"""The Pillow decode reference (``--decode_reference pillow``): the sample scored as an online
service written with Pillow would score it.

TensorFlow's decoder, which every path of the job shares, ignores EXIF orientation and rounds
JPEG's colour conversion and upsampling differently from libjpeg as Pillow drives it (up to
10/255 per pixel, 12 for YCCK). Neither the single nor the serving reference can see that: both
decode with TensorFlow. Here each sampled element's original bytes are decoded by Pillow, with
its EXIF orientation applied (``ImageOps.exif_transpose``, as such services usually do), then
resized and normalised by the shared ``transforms.core.preprocess.resize_and_normalize``, and scored
by the same shared model and model call as the single reference (a batch of one, padded as the
job pads). Comparing with the batch score measures the decoder's share of an online/offline skew.
"""

from __future__ import annotations

import io
import warnings

import apache_beam as beam
import numpy as np
from PIL import Image, ImageOps

from transforms.core import tolerance
from transforms.core.comparisons import PILLOW, ElementComparison
from transforms.core.model_reading import call_model
from transforms.core.preprocess import PreprocessSpec, make_pixels_fn
from transforms.core.records import Scored, error_detail
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics


def decode_with_pillow(data: bytes) -> np.ndarray:
    """Encoded bytes -> uint8 [h, w, 3] as Pillow decodes them: the first frame, EXIF
    orientation applied, converted to RGB (alpha dropped)."""
    with warnings.catch_warnings():
        # The job's own header check already refused images over --max_image_pixels.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)


class _ScoreDecodedByPillowDoFn(beam.DoFn):
    def __init__(self, model_config: ModelConfig, spec: PreprocessSpec, pad_size, atol, rtol):
        self._config = model_config
        self._spec = spec
        self._pad_size = pad_size
        self._atol, self._rtol = atol, rtol

    def setup(self):
        self._load_metrics = ModelLoadMetrics()
        self._model = self._config.load(self._load_metrics)
        self._pixels_fn = make_pixels_fn(self._spec)

    def process(self, scored: Scored):
        self._load_metrics.update_metrics_with_cache()
        error = input_diff = None
        try:
            tensor = self._pixels_fn(decode_with_pillow(scored.raw)).numpy()
            reference = call_model(self._model, tensor[None], self._pad_size)[0]
        except Exception as e:  # noqa: BLE001 - Pillow (or the model) refused this element
            comparison = tolerance.failed_reference(scored.scores)
            error = f"{type(e).__name__}: {error_detail(e)}"
        else:
            comparison = tolerance.compare_scores(scored.scores, reference, self._atol, self._rtol)
            # How far Pillow's model input is from TensorFlow's (a rotation changes the shape
            # of a non-square resize target, or moves every pixel).
            if tensor.shape == scored.tensor.shape:
                input_diff = float(np.max(np.abs(tensor - scored.tensor)))
        yield ElementComparison.of(
            scored.uri,
            scored.batch_size,
            scored.position,
            PILLOW,
            comparison,
            error=error,
            key=scored.key,
            input_max_abs_diff=input_diff,
            exif_orientation=scored.exif_orientation,
        )


@beam.typehints.with_input_types(Scored)
@beam.typehints.with_output_types(ElementComparison)
class PillowReference(beam.PTransform):
    """Sampled Scored elements (holding raw bytes and their tensor) -> ``reference: pillow``
    ElementComparisons.

    Args:
      model_config: the job's model (shared, loaded once per process).
      spec: the job's PreprocessSpec (resize and normalisation after the decoder).
      pad_size: the job's batch size with --pad_batches (the single reference's call), else None.
      atol, rtol: tolerance for ``within_tolerance``.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        spec: PreprocessSpec,
        pad_size: int | None,
        atol: float,
        rtol: float,
    ):
        super().__init__()
        self._dofn = _ScoreDecodedByPillowDoFn(model_config, spec, pad_size, atol, rtol)

    def expand(self, scored):
        return (
            scored
            | "KeepSampledBytes" >> beam.Filter(lambda s: s.sampled and s.raw is not None)
            | "ScoreDecodedByPillow" >> beam.ParDo(self._dofn)
        )
