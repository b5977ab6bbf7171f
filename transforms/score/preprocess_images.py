"""Preprocess: (key, bytes) or (key, (bytes, uri)) -> Preprocessed, or a dead letter saying why.

Before anything is decoded, the header is read (Pillow parses headers lazily) so a
decompression bomb is refused as ``too_many_pixels`` in bounded memory. Decoding itself is the
shared TensorFlow function of ``transforms.core.preprocess``.

Decoding runs one window ahead on a background thread: a fused stage otherwise decodes and
scores in one thread, one after the other, leaving a core idle during each decode. Outputs keep
the input order, so batches (and ``--deterministic`` reruns) are unchanged.
"""

from __future__ import annotations

import collections
import io
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows
from PIL import Image

from transforms.core import metric_names, preprocess, records
from transforms.core.common import ERRORS
from transforms.core.metric_names import METRICS_NAMESPACE

# Formats TensorFlow's decode_image reads; Pillow may recognise more (TIFF, ICO, ...).
_TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP", "MPO"}

# Leading bytes of formats we decode. A file that starts like one but whose header Pillow cannot
# parse (a PNG with a bad IHDR checksum, a JPEG cut after its first marker) is a broken image of
# that format, not an unsupported one. BMP's two-byte "BM" is left out: plain text starts so too.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


def _sniff_format(data: bytes) -> str | None:
    for signature, fmt in _SIGNATURES:
        if data.startswith(signature):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_header(data: bytes, max_pixels: int) -> str:
    """Reads only the image header and returns the format, or raises ImageError."""
    return read_header(data, max_pixels)[0]


# The EXIF tag of the orientation: 1 is the default (stored as shown); 2-8 mirror and rotate.
EXIF_ORIENTATION = 0x0112


def read_header(data: bytes, max_pixels: int) -> tuple[str, int]:
    """Reads only the image header: (format, EXIF orientation, 1 when absent), or raises
    ImageError. The orientation is read, never applied (TensorFlow's decoder ignores it).

    Raises:
      ImageError: empty_file, unsupported_format or too_many_pixels; truncated_image or
        corrupt_image when the file starts like a format we decode but its header is broken.
    """
    if not data:
        raise records.ImageError("decode", records.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
                orientation = _orientation(image)
    except Image.DecompressionBombError as e:
        raise records.ImageError("decode", records.TOO_MANY_PIXELS, str(e)) from None
    except Exception:  # noqa: BLE001 - a broken header of a known format, or not an image
        fmt = _sniff_format(data)
        if fmt is not None:
            raise decode_failure(data, fmt, ValueError("its header cannot be parsed")) from None
        # The message never quotes the bytes: a link to a private file must not leak them.
        raise records.ImageError(
            "decode",
            records.UNSUPPORTED_FORMAT,
            f"not a recognised image format ({len(data):,} bytes that start like no JPEG, "
            "PNG, GIF, BMP or WebP file)",
        ) from None
    if fmt not in _TF_FORMATS:
        raise records.ImageError(
            "decode",
            records.UNSUPPORTED_FORMAT,
            f"{fmt} images are not supported; use JPEG, PNG, GIF, BMP or WebP",
        )
    if width * height > max_pixels:
        raise records.ImageError(
            "decode",
            records.TOO_MANY_PIXELS,
            f"header declares {width}x{height} = {width * height:,} pixels, "
            f"over --max_image_pixels {max_pixels:,}; refused before decoding",
        )
    return fmt, orientation


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF is no orientation; the pixels decide
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _looks_truncated(data: bytes, fmt: str) -> bool:
    tail = data.rstrip(b"\x00")
    if fmt in ("JPEG", "MPO"):
        return not tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" not in tail[-16:]
    if fmt == "GIF":
        return not tail.endswith(b";")
    return False


def decode_failure(data: bytes, fmt: str, error: Exception) -> records.ImageError:
    """Classifies a decoder failure on an image whose header looked valid."""
    detail = records.error_detail(error)
    if _looks_truncated(data, fmt):
        return records.ImageError(
            "decode",
            records.TRUNCATED_IMAGE,
            f"{fmt} data ends early ({len(data)} bytes): {detail}",
        )
    return records.ImageError("decode", records.CORRUPT_IMAGE, f"{fmt} data is corrupt: {detail}")


class ImagePreprocessor:
    """Bytes -> float32 [H, W, 3] through the shared TF function, with the header guard."""

    def __init__(self, spec: preprocess.PreprocessSpec, max_pixels: int):
        self.spec = spec
        self._max_pixels = max_pixels
        self._fn = preprocess.make_preprocess_fn(spec)

    def __call__(self, data: bytes) -> np.ndarray:
        return self.decode(data)[0]

    def decode(self, data: bytes) -> tuple[np.ndarray, int]:
        """(the model input, the image's EXIF orientation)."""
        fmt, orientation = read_header(data, self._max_pixels)
        try:
            return self._fn(tf.constant(data)).numpy(), orientation
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            raise decode_failure(data, fmt, e) from None
        except Exception as e:  # noqa: BLE001 - e.g. ResourceExhaustedError: this element's error
            raise records.ImageError(
                "preprocess",
                records.PREPROCESS_ERROR,
                f"{type(e).__name__}: {records.error_detail(e)}",
            ) from None


# Its errors (dicts) keep no hint: ``dict`` would change their coder (FastPrimitivesCoder's).
@beam.typehints.with_input_types(records.EncodedImage)
@beam.typehints.with_output_types(records.Preprocessed)
class _PreprocessDoFn(beam.DoFn):
    def __init__(
        self,
        spec: preprocess.PreprocessSpec,
        max_pixels: int,
        lookahead: int,
    ):
        self._spec = spec
        self._max_pixels = max_pixels
        self._lookahead = lookahead
        self._errors = Metrics.counter(METRICS_NAMESPACE, metric_names.DECODE_ERRORS)

    def setup(self):
        self._preprocessor = ImagePreprocessor(self._spec, self._max_pixels)
        # One thread: TF releases the GIL while it decodes, so this overlaps the model call
        # downstream; more threads would only compete with the model's own intra-op pool.
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")

    def start_bundle(self):
        self._in_flight: collections.deque[tuple[str, str, bytes, Future]] = collections.deque()

    def process(self, element):
        key, data, uri = records.split_encoded(element)
        future = self._decoder.submit(self._preprocessor.decode, data)
        self._in_flight.append((key, uri, data, future))
        while len(self._in_flight) > self._lookahead:
            yield self._outcome(*self._in_flight.popleft())

    def finish_bundle(self):
        while self._in_flight:
            outcome = self._outcome(*self._in_flight.popleft())
            if isinstance(outcome, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(
                    outcome.tag, GlobalWindows.windowed_value(outcome.value)
                )
            else:
                yield GlobalWindows.windowed_value(outcome)

    def teardown(self):
        self._decoder.shutdown(cancel_futures=True)

    def _outcome(self, key: str, uri: str, data: bytes, decoded: Future):
        try:
            tensor, orientation = decoded.result()
        except records.ImageError as e:
            # The error's traceback holds this frame, which holds the future, which holds the
            # error: a cycle only the cyclic GC frees, keeping the decoder's frames (and the
            # image bytes in them) alive for thousands of elements. Dropping the future ends it.
            del decoded
            self._errors.inc()
            return beam.pvalue.TaggedOutput(ERRORS, e.record(uri, key))
        # The bytes go on to SampleForReconciliation, the next step, which keeps them only for
        # the sample (serving and Pillow references, thumbnails).
        return records.Preprocessed(uri, tensor, raw=data, key=key, exif_orientation=orientation)


class PreprocessResult(NamedTuple):
    """Preprocess's outputs (PCollections)."""

    images: beam.PCollection  # Preprocessed, still holding their encoded bytes
    errors: beam.PCollection  # decode and preprocess error records (dicts)


@beam.typehints.with_input_types(records.EncodedImage)
class Preprocess(beam.PTransform):
    """Decodes and preprocesses images with the shared TF function.

    Args:
      spec: the PreprocessSpec, resolved once when the job is built.
      max_pixels: images whose header declares more pixels are refused undecoded.
      lookahead: how many elements may be decoding or decoded ahead of the one emitted; one
        batch's worth lets the next batch decode while the current one is scored.

    Returns:
      A ``PreprocessResult``: ``images`` of Preprocessed (holding their encoded bytes, for
      SampleForReconciliation to keep or drop) and ``errors`` of error records.
    """

    def __init__(
        self,
        spec: preprocess.PreprocessSpec,
        max_pixels: int,
        lookahead: int = 32,
    ):
        super().__init__()
        self._dofn = _PreprocessDoFn(spec, max_pixels, lookahead)

    def expand(self, images):
        decoded = images | "DecodeAndPreprocess" >> beam.ParDo(self._dofn).with_outputs(
            ERRORS, main="images"
        )
        return PreprocessResult(decoded.images, decoded[ERRORS])
