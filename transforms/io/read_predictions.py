"""ReadPredictions: earlier runs' ``OUTPUT/predictions/part-*`` -> prediction records.

Every output format the scoring job writes is read (JSONL, Parquet, PredictionLog TFRecord),
detected from the files present, with Beam's own file sources so reading splits across workers.
``run_format`` and ``first_record`` are the launcher's cheap checks (a path holding no run, mixed
formats, the class count and model digest of a run), reading at most one record.

An interrupted or failed run never finalised its shards: its predictions sit where Beam's sink
left them, ``predictions/beam-temp-*/*``. Those files are read too, keeping only complete
records: a JSON line cut off mid-write, a Parquet file without its footer, the rest of a gzip
stream that ends early are ignored. ``run_state_note`` says when a run is such a run.
"""

from __future__ import annotations

import json
import posixpath
import zlib
from functools import partial
from typing import NamedTuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.filebasedsource import ReadAllFiles
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.core import metric_names, prediction_formats
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.io.tfrecord_frames import CorruptFrames, TFRecordSource, iter_frames

SUFFIXES = prediction_formats.SUFFIXES
# A PredictionLog whose frame claims more is corrupt: it would hold 64 million float32 scores.
MAX_PREDICTION_LOG_BYTES = 256 * 1024 * 1024
_PREDICTION_LOG_LIMIT = "the PredictionLog size limit"


class RunReadError(ValueError):
    """A path that holds no readable run (no predictions, or predictions in several formats)."""


def _prediction_files(run_dir: str, pattern: str = "part-*") -> list[str]:
    pattern = posixpath.join(run_dir.rstrip("/"), "predictions", pattern)
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception as e:  # noqa: BLE001 - a filesystem error means: no run to read here
        raise RunReadError(f"{run_dir!r}: cannot list its predictions: {e}") from None
    return sorted(m.path for m in found)


def _format_of(path: str) -> str | None:
    for name, suffix in SUFFIXES.items():
        if path.endswith(suffix):
            return name
    return None


def _unfinished_files(run_dir: str) -> list[str]:
    """The prediction files an unfinished run's sink left (never renamed into part-*)."""
    return _prediction_files(run_dir, "beam-temp-*/*")


def run_format(run_dir: str) -> str:
    """The output format of a run, from the files under ``run_dir/predictions`` (those an
    unfinished run left too).

    Raises:
      RunReadError: no prediction files there, or files of more than one format.
    """
    paths = _prediction_files(run_dir) + _unfinished_files(run_dir)
    formats = {_format_of(path) for path in paths} - {None}
    if not formats:
        raise RunReadError(
            f"{run_dir!r} holds no run: no predictions/part-*.{{jsonl,parquet,tfrecord.gz}} there"
        )
    if len(formats) > 1:
        raise RunReadError(
            f"{run_dir!r} mixes prediction formats ({', '.join(sorted(formats))}) under "
            "predictions/; rerun it into a fresh output"
        )
    return formats.pop()


def first_record(run_dir: str) -> dict | None:
    """The first prediction record of a run (None when it has none)."""
    return find_record(run_dir, lambda record: True)


def run_records(run_dir: str):
    """Every prediction record of a run, read shard by shard in this process: for one-off
    look-ups (``predict_one --against``), not for jobs."""
    output_format = run_format(run_dir)
    for path in _prediction_files(run_dir) + _unfinished_files(run_dir):
        if _format_of(path) != output_format:
            continue
        yield from (
            iter_complete_records(path, output_format)
            if "/beam-temp-" in path
            else iter_records(path, output_format)
        )


def find_record(run_dir: str, key_matches) -> dict | None:
    """The first record of a run whose key satisfies ``key_matches(record)``."""
    return next(filter(key_matches, run_records(run_dir)), None)


def run_state_note(flag: str, run_dir: str) -> str | None:
    """One line when ``run_dir``'s run.json does not say the run finished, else None."""
    path = posixpath.join(run_dir.rstrip("/"), "run.json")
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            status = json.load(f).get("status")
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing says it finished
        status = None
    if status == "complete":
        return None
    said = "has no readable run.json" if status is None else f"is {status} (run.json)"
    return (
        f"{flag} {run_dir}: that run {said}, so it may not have finished; its complete "
        "prediction records are used (those in predictions/beam-temp-* too), any cut off "
        "mid-write are ignored"
    )


def iter_records(path: str, output_format: str):
    """Every prediction record of one shard, in order."""
    if output_format == "jsonl":
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for line in f:
                record = parse_json_line(line) if line.strip() else None
                if record is not None:  # an unreadable line is the job's count, not fatal here
                    yield record
    elif output_format == "parquet":
        import pyarrow.parquet as pq

        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for batch in pq.ParquetFile(f).iter_batches():
                yield from map(prediction_formats.from_parquet_row, batch.to_pylist())
    else:
        # Frames are checked (CRCs, a length within the limit before it is read).
        with FileSystems.open(path, compression_type=CompressionTypes.GZIP) as f:
            try:
                for _, payload in iter_frames(f, MAX_PREDICTION_LOG_BYTES, _PREDICTION_LOG_LIMIT):
                    yield prediction_formats.from_prediction_log(payload)
            except CorruptFrames as e:
                raise e.in_file(path) from None


def iter_complete_records(path: str, output_format: str):
    """The complete prediction records of a file an unfinished run left: stops quietly where
    the writer was cut off (a partial line, a missing Parquet footer, a short gzip stream)."""
    try:
        if output_format == "jsonl":
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # the last line, cut off mid-write
                    if line.strip():
                        yield prediction_formats.from_json_line(line.decode("utf-8"))
        else:
            yield from iter_records(path, output_format)
    except (OSError, EOFError, ValueError, zlib.error):
        pass  # the rest was never written: what came before it is complete
    except Exception as e:  # noqa: BLE001 - pyarrow's errors for a file without its footer
        if not type(e).__module__.startswith("pyarrow"):
            raise


UNREADABLE = "unreadable"


def parse_json_line(line: bytes | str) -> dict | None:
    """The prediction record of one JSONL line; None for a line that holds none (cut off by
    an interrupted write, not UTF-8, not JSON, or not an object with a string ``key`` and a
    ``top_k`` list)."""
    try:
        record = prediction_formats.from_json_line(
            line.decode("utf-8") if isinstance(line, bytes) else line
        )
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        return None
    return record if isinstance(record.get("top_k"), list) else None


@beam.typehints.with_input_types(tuple[str, bytes])
class _ParseJsonLinesDoFn(beam.DoFn):
    """(shard, line) -> its record, or the shard's name on the ``unreadable`` output (counted;
    never the line itself). Blank lines hold nothing and are passed over."""

    def __init__(self):
        self._unreadable = Metrics.counter(
            METRICS_NAMESPACE, metric_names.UNREADABLE_PREDICTION_LINES
        )

    def process(self, element):
        shard, line = element
        if not line.strip():
            return
        record = parse_json_line(line)
        if record is None:
            self._unreadable.inc()
            yield beam.pvalue.TaggedOutput(UNREADABLE, shard)
            return
        yield record


class ReadPredictionsResult(NamedTuple):
    """ReadPredictions' outputs (PCollections)."""

    records: beam.PCollection  # prediction record dicts
    unreadable: beam.PCollection  # the shard name of each JSONL line that holds no record


class ReadPredictions(beam.PTransform):
    """Reads runs' prediction records, whatever format each wrote them in.

    However many runs, the pipeline has one read per output format (a file pattern per run
    in one ``ReadAll``), so hundreds of earlier runs stay a small graph.

    Args:
      runs: one run's ``--output`` or a list of them (local, ``gs://``, ...).
      output_format: ``jsonl``, ``parquet`` or ``tfrecord``; None detects each run's from its
        files (when the pipeline is built).
      columns: for Parquet, read only these columns (e.g. ``["key", "model_digest"]``).

    Returns:
      A ``ReadPredictionsResult``: ``records``, the prediction record dicts (the JSONL
      record's fields), and ``unreadable``, the shard name of each JSONL line that holds no
      record (counted as ``unreadable_prediction_lines``; left out, never fatal).
    """

    def __init__(
        self,
        runs: str | list[str] | tuple[str, ...],
        output_format: str | None = None,
        columns: list[str] | None = None,
    ):
        super().__init__()
        runs = [runs] if isinstance(runs, str) else list(runs)
        if not runs:
            raise ValueError("ReadPredictions needs at least one run")
        self._patterns: dict[str, list[str]] = {}
        self._unfinished: list[tuple[str, str]] = []
        for run in runs:
            run_dir = run.rstrip("/")
            fmt = output_format or run_format(run_dir)
            pattern = posixpath.join(run_dir, "predictions", f"part-*{SUFFIXES[fmt]}")
            self._patterns.setdefault(fmt, []).append(pattern)
            self._unfinished += [
                (path, fmt) for path in _unfinished_files(run_dir) if _format_of(path) == fmt
            ]
        self._columns = columns

    def expand(self, pbegin):
        records, unreadable = [], []
        for fmt, patterns in sorted(self._patterns.items()):
            files = pbegin | f"Patterns[{fmt}]" >> beam.Create(patterns)
            if fmt == "jsonl":
                parsed = (
                    files
                    | "ReadJsonLines"
                    >> beam.io.ReadAllFromText(coder=coders.BytesCoder(), with_filename=True)
                    | "ParseJsonLines"
                    >> beam.ParDo(_ParseJsonLinesDoFn()).with_outputs(UNREADABLE, main="records")
                )
                records.append(parsed.records)
                unreadable.append(parsed[UNREADABLE])
            elif fmt == "parquet":
                records.append(
                    files
                    | "ReadParquet" >> beam.io.ReadAllFromParquet(columns=self._columns)
                    | "ParseParquetRows" >> beam.Map(prediction_formats.from_parquet_row)
                )
            else:
                records.append(
                    files
                    | "ReadTFRecord" >> _read_all_prediction_logs()
                    | "ParsePredictionLogs" >> beam.Map(prediction_formats.from_prediction_log)
                )
        if self._unfinished:
            # Unfinished runs' sink files: complete records only, read whole, one file per
            # element (a recovery path, not the bulk read).
            records.append(
                pbegin
                | "ListUnfinished" >> beam.Create(self._unfinished)
                | "ReadUnfinished" >> beam.FlatMapTuple(iter_complete_records)
            )
        if not unreadable:
            unreadable.append(pbegin | "NoUnreadableLines" >> beam.Create([]))
        return ReadPredictionsResult(
            _one(records, "MergeFormats"), _one(unreadable, "MergeUnreadable")
        )


def _read_all_prediction_logs() -> ReadAllFiles:
    """File patterns -> the payloads of their gzipped TFRecord files, as Beam's
    ``ReadAllFromTFRecord`` reads them but with checked frames (``TFRecordSource``)."""
    source = partial(
        TFRecordSource,
        max_record_bytes=MAX_PREDICTION_LOG_BYTES,
        limit_name=_PREDICTION_LOG_LIMIT,
        compression_type=CompressionTypes.GZIP,
    )
    return ReadAllFiles(False, CompressionTypes.GZIP, 64 * 1024 * 1024, 0, source)


def _one(collections: list, label: str):
    return collections[0] if len(collections) == 1 else tuple(collections) | label >> beam.Flatten()
