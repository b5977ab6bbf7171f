"""ReadImages: file patterns and/or a manifest of URIs -> (uri, encoded bytes).

Everything goes through Beam's ``FileSystems``, so local paths and ``gs://`` behave alike.
Every distinct matched URI leaves this stage exactly once: as bytes, or as a read error.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import records
from transforms.common import ERRORS, METRICS_NAMESPACE


def parse_manifest_line(line: str) -> str | None:
    """A manifest holds one URI a line; blank lines and ``#`` comments are skipped."""
    line = line.strip()
    return line if line and not line.startswith("#") else None


class _ReadBytesDoFn(beam.DoFn):
    def __init__(self):
        self._matched = Metrics.counter(METRICS_NAMESPACE, "matched")
        self._read_errors = Metrics.counter(METRICS_NAMESPACE, "read_errors")

    def process(self, uri: str):
        self._matched.inc()
        try:
            # UNCOMPRESSED: an image named *.gz must not be gunzipped behind our back.
            with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                data = f.read()
        except Exception as e:  # noqa: BLE001 - any I/O failure is this element's error
            self._read_errors.inc()
            reason = records.READ_ERROR if _exists(uri) else records.NOT_FOUND
            error = records.ImageError("read", reason, f"cannot read: {e}")
            yield beam.pvalue.TaggedOutput(ERRORS, error.record(uri))
            return
        yield uri, data


def _exists(uri: str) -> bool:
    try:
        return FileSystems.exists(uri)
    except Exception:  # noqa: BLE001 - an unreachable filesystem means "cannot tell"
        return True


class ReadImages(beam.PTransform):
    """Matches patterns and reads manifest URIs, then reads each distinct file once.

    Args:
      patterns: file patterns (local or ``gs://``); a pattern that matches nothing fails.
      manifest: optional text file of URIs, one a line.

    Returns:
      A dict: ``images`` of (uri, bytes), ``errors`` of error records, and ``matched``, a
      singleton PCollection of the number of distinct URIs (counted from the URIs, before any
      bytes are read, so the reconciliation sample can be sized inside the job).
    """

    def __init__(self, patterns: list[str] | tuple[str, ...] = (), manifest: str | None = None):
        super().__init__()
        if not patterns and not manifest:
            raise ValueError("ReadImages needs patterns or a manifest")
        self._patterns = list(patterns)
        self._manifest = manifest

    def expand(self, pbegin):
        sources = []
        if self._patterns:
            sources.append(
                pbegin
                | "CreatePatterns" >> beam.Create(self._patterns)
                | "MatchFiles"
                >> fileio.MatchAll(empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
                | "TakePaths" >> beam.Map(lambda metadata: metadata.path)
            )
        if self._manifest:
            sources.append(
                pbegin
                # validate=False: ReadFromText would otherwise list the manifest while the graph
                # is built, i.e. on the launcher (a Dataflow dry run hangs retrying gs://).
                # The launcher's preflight already checks that it exists.
                | "ReadManifest" >> beam.io.ReadFromText(self._manifest, validate=False)
                | "ParseManifest"
                >> beam.FlatMap(lambda line: filter(None, [parse_manifest_line(line)]))
            )
        uris = (
            sources[0] if len(sources) == 1 else tuple(sources) | "MergeSources" >> beam.Flatten()
        )
        # Distinct groups by URI: an image matched twice is scored once, and the shuffle spreads
        # reading and decoding over all workers (it doubles as the Reshuffle after matching).
        distinct = uris | "DeduplicateUris" >> beam.Distinct()
        matched = distinct | "CountMatched" >> beam.combiners.Count.Globally()
        # Later stages read ``matched`` as a side input, and a runner cannot fuse a step with
        # the stage that computes its side input. Reading it here moves that fusion break onto
        # the URIs; otherwise it falls between reading and decoding and holds every image's
        # bytes at once.
        counted = distinct | "AwaitMatchedCount" >> beam.Map(
            lambda uri, _: uri, beam.pvalue.AsSingleton(matched)
        )
        read = counted | "ReadBytes" >> beam.ParDo(_ReadBytesDoFn()).with_outputs(
            ERRORS, main="images"
        )
        return {"images": read.images, ERRORS: read[ERRORS], "matched": matched}
