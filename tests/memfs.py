"""``mem://``: a process-local, in-memory Beam filesystem standing in for ``gs://`` in tests.

Beam's Python SDK has no in-memory filesystem; defining a ``FileSystem`` subclass registers its
scheme with ``FileSystems`` (Beam finds filesystems by subclass), so importing this module makes
``mem://`` paths work everywhere the job uses ``FileSystems``. Like an object store, it has no
directories: a "directory" exists when some file lies under it.
"""

from __future__ import annotations

import collections
import io
import time

from apache_beam.io.filesystem import BeamIOError, FileMetadata, FileSystem


class _Upload(io.BytesIO):
    """What ``create`` returns: the bytes become the file when it is closed."""

    def __init__(self, files: dict, path: str):
        super().__init__()
        self._files, self._path = files, path

    def close(self):
        if not self.closed:
            self._files[self._path] = (self.getvalue(), time.time())
        super().close()


class InMemoryFileSystem(FileSystem):
    # Shared by every instance: FileSystems creates a new instance for each call.
    _files: dict[str, tuple[bytes, float]] = {}
    # Requests by kind ("open", "metadata"), as an object store would bill them.
    requests: collections.Counter = collections.Counter()

    @classmethod
    def scheme(cls):
        return "mem"

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path, (data, updated) in list(self._files.items()):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data), updated)

    def create(self, path, mime_type="application/octet-stream", compression_type=None):
        return _Upload(self._files, path)

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        self.requests["open"] += 1
        if path not in self._files:
            raise BeamIOError(f"no such file: {path}", {path: FileNotFoundError(path)})
        return io.BytesIO(self._files[path][0])

    def copy(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            self._files[destination] = self._files[source]

    def rename(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            self._files[destination] = self._files.pop(source)

    def exists(self, path):
        prefix = path.rstrip("/") + "/"
        return path in self._files or any(p.startswith(prefix) for p in self._files)

    def size(self, path):
        return len(self._files[path][0])

    def last_updated(self, path):
        return self._files[path][1]

    def checksum(self, path):
        return str(hash(self._files[path][0]))

    def metadata(self, path):
        self.requests["metadata"] += 1
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        for path in paths:
            prefix = path.rstrip("/") + "/"
            for name in [p for p in self._files if p == path or p.startswith(prefix)]:
                del self._files[name]
