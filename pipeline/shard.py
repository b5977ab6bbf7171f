"""Packs image files into TFRecord or Parquet shards: ``python -m pipeline.shard``.

    python -m pipeline.shard --input 'DIR/**/*.png' --output OUTDIR --format tfrecord \\
        [--records_per_shard 1000] [--compression gzip|none] [--keys uri|relative]

Each image becomes one record with its bytes as read (not decoded or checked: the scoring job does
that) and its name as the key: the full URI by default (a local file's absolute path, as
``transforms.core.common.normalize_uri`` spells it), so a shard run's keys equal a files run's keys
(``--skip_existing`` and ``pipeline.compare`` match them), or with ``--keys relative`` the path
relative to the inputs' common folder. TFRecord records are ``tf.train.Example`` with bytes features
``image/encoded`` and ``image/filename``; Parquet rows have one struct column ``image`` of ``bytes``
and ``path``. Shards are written in sorted URI order as
``OUTDIR/shard-NNNNN-of-MMMMM.tfrecord[.gz]`` or ``.parquet``; Parquet row groups stay under about
32 MiB so readers hold little at a time. Every path goes through Beam's FileSystems (local or
``gs://``). The flags, their defaults and the exit codes are in ``pipeline.tool_flags.SHARD``
(what --help shows).
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Iterator

from pipeline import cli, disk_full, quiet
from pipeline.flags import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, MAX_FILE_BYTES, UsageError
from pipeline.tool_flags import SHARD, SHARD_COMPRESSIONS, SHARD_FORMATS

if __name__ == "__main__":
    # --help answers from the flag tables (pipeline.cli) before Beam is imported below.
    cli.exit_on_help(SHARD, sys.argv[1:])
    cli.exit_on_early_refusal(SHARD, sys.argv[1:], "shard")

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import outputs
from pipeline.credentials import check_gcs_credentials
from pipeline.job_config import check_output_path
from transforms.core.common import absolute_pattern, is_local, local_path, normalize_uri
from transforms.core.file_checks import stat_regular_file
from transforms.core.records import ImageError
from transforms.io import tfrecord_frames
from transforms.score.read_files import read_file

ROW_GROUP_BYTES = 32 * 1024 * 1024
# --output must be empty, so the partial shards keep a rerun out of it.
INCOMPLETE = "the shards there are incomplete: free space, then rerun into a new --output"


class ShardError(UsageError):
    """A bad argument or unreadable input: exit status 2."""


def common_root(uris: list[str]) -> str:
    """The longest folder prefix (ending in ``/``) shared by every URI."""
    folders = [uri.rsplit("/", 1)[0].split("/") for uri in uris]
    shared = folders[0]
    for parts in folders[1:]:
        n = 0
        while n < min(len(shared), len(parts)) and shared[n] == parts[n]:
            n += 1
        shared = shared[:n]
    return "/".join(shared) + "/" if shared else ""


def shard_keys(uris: list[str], relative: bool) -> list[str]:
    """The key stored with each image: its URI, or its path below the common folder."""
    if not relative:
        return list(uris)
    root = common_root(uris)
    return [uri[len(root) :] for uri in uris]


def shard_name(index: int, count: int, fmt: str, compression: str) -> str:
    suffix = (
        ".parquet" if fmt == "parquet" else ".tfrecord" + (".gz" if compression == "gzip" else "")
    )
    return f"shard-{index:05d}-of-{count:05d}{suffix}"


def example_bytes(image: bytes, key: str) -> bytes:
    """A serialized tf.train.Example: ``image/encoded`` and ``image/filename``."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    features = example.features.feature
    features["image/encoded"].bytes_list.value.append(image)
    features["image/filename"].bytes_list.value.append(key.encode("utf-8"))
    return example.SerializeToString()


def _match(patterns: list[str]) -> list[str]:
    """The distinct inputs the patterns match, as the scoring job keys them (``normalize_uri``)."""
    uris = set()
    for pattern in patterns:
        try:
            found = FileSystems.match([absolute_pattern(pattern)])[0].metadata_list
        except Exception as e:  # noqa: BLE001 - a listing failure is the user's to fix
            raise ShardError(f"--input {pattern!r}: cannot list: {e}") from None
        if not found:
            raise ShardError(f"--input {pattern!r} matched no files; check the path or pattern")
        uris.update(normalize_uri(metadata.path) for metadata in found)
    return sorted(uris)


def _read(uri: str, max_file_bytes: int) -> bytes:
    """The file's bytes under the scoring job's own checks (a regular file, opened without
    blocking, at most ``max_file_bytes``): a FIFO, a device or a huge file is one line."""
    try:
        return read_file(uri, max_file_bytes)
    except ImageError as e:
        raise ShardError(f"cannot read {uri}: {e} ({e.reason})") from None


def _check_inputs(uris: list[str], max_file_bytes: int) -> None:
    """Every local input is a regular file within the limit, before any shard is written."""
    for uri in uris:
        if not is_local(uri):
            continue  # an object's size is checked as it is read
        try:
            size = stat_regular_file(local_path(uri)).st_size
        except ImageError as e:
            raise ShardError(f"cannot read {uri}: {e} ({e.reason})") from None
        if size > max_file_bytes:
            raise ShardError(
                f"cannot read {uri}: its size {size:,} bytes is over --max_file_bytes "
                f"{max_file_bytes:,}"
            )


def _write_tfrecord(path: str, items: Iterator[tuple[bytes, str]], compression: str) -> None:
    # TFRecord framing (length, masked CRC32C of length and data), as TensorFlow writes it.
    kind = CompressionTypes.GZIP if compression == "gzip" else CompressionTypes.UNCOMPRESSED
    with FileSystems.create(path, compression_type=kind) as f:
        for image, key in items:
            f.write(tfrecord_frames.frame(example_bytes(image, key)))


def _write_parquet(path: str, items: Iterator[tuple[bytes, str]], compression: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("image", image_type)])
    codec = "gzip" if compression == "gzip" else "none"
    with (
        FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f,
        pq.ParquetWriter(f, schema, compression=codec) as writer,
    ):
        rows, size = [], 0
        for image, key in items:
            rows.append({"bytes": image, "path": key})
            size += len(image)
            # One write_table call is one row group: keep each under ROW_GROUP_BYTES.
            if size >= ROW_GROUP_BYTES:
                writer.write_table(pa.table({"image": pa.array(rows, image_type)}))
                rows, size = [], 0
        if rows:
            writer.write_table(pa.table({"image": pa.array(rows, image_type)}))


def write_shards(
    patterns: list[str],
    output: str,
    fmt: str,
    records_per_shard: int = 1000,
    compression: str = "none",
    relative_keys: bool = False,
    max_file_bytes: int = MAX_FILE_BYTES.default,
) -> list[str]:
    """Packs the images matched by ``patterns`` into shards under ``output``; returns them.

    Raises:
      ShardError: nothing matched, an input cannot be read, or ``output`` is not empty.
    """
    if fmt not in SHARD_FORMATS:
        raise ShardError(f"--format {fmt!r}: choose one of {', '.join(SHARD_FORMATS)}")
    if records_per_shard < 1:
        raise ShardError("--records_per_shard must be at least 1")
    if compression not in SHARD_COMPRESSIONS:
        raise ShardError(
            f"--compression {compression!r}: choose one of {', '.join(SHARD_COMPRESSIONS)}"
        )
    if max_file_bytes < 1:
        raise ShardError("--max_file_bytes must be positive")
    check_gcs_credentials([("--output", output)] + [("--input", p) for p in patterns])
    uris = _match(patterns)
    _check_inputs(uris, max_file_bytes)
    # A literal folder, as the scoring job's --output: a pattern would be listed as one.
    output = check_output_path(output)
    if not outputs.is_empty(output):
        raise ShardError(f"--output {output!r} is not empty; choose a new directory")
    keys = shard_keys(uris, relative_keys)
    count = -(-len(uris) // records_per_shard)
    write = _write_tfrecord if fmt == "tfrecord" else _write_parquet
    written = []
    for index in range(count):
        chunk = range(index * records_per_shard, min(len(uris), (index + 1) * records_per_shard))
        path = posixpath.join(output, shard_name(index, count, fmt, compression))
        write(path, ((_read(uris[i], max_file_bytes), keys[i]) for i in chunk), compression)
        written.append(path)
    return written


def main(argv=None) -> int:
    """The command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if cli.wants_help(argv):
        cli.parser_for(SHARD).print_help()
        return EXIT_OK
    try:
        args = cli.parse(SHARD, argv)
        if args.format == "tfrecord":
            # tf.train.Example needs TensorFlow, whose import writes start-up lines to fd 2.
            quiet.import_tensorflow_quietly()
        written = write_shards(
            args.input,
            args.output,
            args.format,
            args.records_per_shard,
            args.compression,
            args.keys == "relative",
            args.max_file_bytes,
        )
    except UsageError as e:
        print(f"shard: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("shard: interrupted; the shards in --output are incomplete", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if not disk_full.is_disk_full(e):
            raise
        return disk_full.report("shard", args.output, INCOMPLETE)
    print(f"wrote {len(written)} shard(s) to {args.output.rstrip('/')}/")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(disk_full.exit_status("shard", main))
