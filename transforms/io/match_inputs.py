"""MatchInputs: file patterns and/or a manifest of URIs -> every name they give, as bytes.

The one front end of both scoring readers (``ReadImages``: image files, ``ReadTFRecordImages``
and ``ReadParquetImages``: shards). Names travel as bytes (``name_of``, ``path_of``,
``uri_of``) until a reader opens them: a file name or a manifest line need not be valid UTF-8,
and Beam's string coders would fail the whole job on one such name. Nothing is dropped here:
every name a pattern matches is given, dangling symbolic links and loops included (Beam's own
listing drops what it cannot stat), and a manifest line that is not UTF-8 is the raw name it
spells (``os.fsdecode``'s way), so the readers' checks account for each one with an error
record (``broken_symlink``, ``not_found``, ...) or read it.
"""

from __future__ import annotations

import os
import posixpath
import re

import apache_beam as beam
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from transforms.core.common import absolute_pattern, is_local, normalize_uri, parse_manifest_line


def name_of(path: str) -> bytes:
    """A name as it travels: the path's bytes (surrogates back to the raw bytes they hold)."""
    return path.encode("utf-8", "surrogateescape")


def path_of(name: bytes) -> str:
    """The path to open a travelling name by (raw bytes kept as surrogates)."""
    return name.decode("utf-8", "surrogateescape")


def display_uri(path: str) -> str:
    """The URI as records show it: valid UTF-8, a byte that is not written as ``\\xNN``."""
    return name_of(path).decode("utf-8", "backslashreplace")


def uri_of(name: bytes) -> str:
    """The URI records show for a travelling name (``display_uri``)."""
    return display_uri(path_of(name))


def match_local(pattern: str, in_name_order: bool = True) -> list[str]:
    """Beam's local matching (same pattern syntax), without its blind spots.

    Beam's own listing drops what it cannot stat (dangling symbolic links, loops) and never
    lists directories, so such names vanish from the job unaccounted. Here every name the
    pattern matches is returned; reading then turns the odd ones into error records.
    Directories are left out of a recursive ``**`` pattern, where they are only containers.
    ``in_name_order``: sorted names, else the order the directory lists them (Beam's own).
    """
    if not re.search(r"[*?[]", pattern):
        return [pattern] if os.path.lexists(pattern) else []
    prefix = re.match(r"^[^[*?]*", pattern).group(0)
    root = os.path.dirname(prefix)
    regex = re.compile(FileSystem.translate_pattern(pattern))
    recursive = "**" in pattern
    depth = pattern.count("/")  # without **, a match has exactly the pattern's depth
    found = []
    for directory, dirs, files in os.walk(root or "."):
        # Without a directory in the pattern, names are relative: "x.png", not "./x.png".
        here = directory if root else directory[2:]
        for name in files if recursive else files + dirs:
            path = posixpath.join(here, name)
            if regex.match(path):
                found.append(path)
        if not recursive and posixpath.join(here, "x").count("/") >= depth:
            dirs[:] = []  # names deeper down cannot match
    return sorted(found) if in_name_order else found


def match_pattern(pattern: str, base_dir: str, in_name_order: bool = True) -> list[bytes]:
    """The names a pattern matches (``match_local`` for a local one, Beam's listing for a
    remote one), as ``normalize_uri`` keys them.

    Raises:
      ValueError: the pattern matched nothing.
    """
    if is_local(pattern) and not pattern.startswith("file://"):
        paths = match_local(pattern, in_name_order)
    else:
        paths = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    if not paths:
        raise ValueError(f"the pattern {pattern!r} matched no files")
    return [name_of(normalize_uri(path, base_dir)) for path in paths]


def manifest_names(line: bytes, base_dir: str) -> list[bytes]:
    """The name a manifest line gives (none for a blank line or a ``#`` comment)."""
    uri = parse_manifest_line(line, base_dir)
    return [] if uri is None else [name_of(uri)]


class MatchInputs(beam.PTransform):
    """Every name the patterns match and the manifest lists, as bytes, not deduplicated.

    Args:
      patterns: file patterns (local or ``gs://``); a pattern that matches nothing fails.
      manifest: optional text file of URIs, one a line, read as bytes.
      reader: the reader's name, for the message when neither is given.
      in_name_order: local names in sorted order (image files: each run forms the same
        batches wherever it runs), else in the order the directory lists them, as Beam's own
        matching gives them (shards: reruns over the same shards keep the batches that
        earlier releases formed).

    Relative patterns and lines are resolved against the working directory when this is
    built, on the launcher: a worker's may be another, and keys must not depend on it.
    """

    def __init__(
        self,
        patterns=(),
        manifest: str | None = None,
        reader: str = "MatchInputs",
        in_name_order: bool = True,
    ):
        super().__init__()
        if not patterns and not manifest:
            raise ValueError(f"{reader} needs patterns or a manifest")
        self._base_dir = os.getcwd()
        self._patterns = [absolute_pattern(pattern, self._base_dir) for pattern in patterns]
        self._manifest = manifest
        self._in_name_order = in_name_order

    def expand(self, pbegin):
        sources = []
        if self._patterns:
            sources.append(
                pbegin
                | "CreatePatterns" >> beam.Create(self._patterns)
                | "MatchPatterns"
                >> beam.FlatMap(match_pattern, self._base_dir, self._in_name_order)
            )
        if self._manifest:
            sources.append(
                pbegin
                # validate=False: ReadFromText would otherwise list the manifest while the graph
                # is built, i.e. on the launcher (a Dataflow dry run hangs retrying gs://).
                # The launcher's preflight already checks that it exists.
                | "ReadManifest"
                >> beam.io.ReadFromText(
                    self._manifest, validate=False, coder=beam.coders.BytesCoder()
                )
                | "ParseManifest" >> beam.FlatMap(manifest_names, self._base_dir)
            )
        if len(sources) == 1:
            return sources[0]
        return tuple(sources) | "MergeSources" >> beam.Flatten()
