"""The output directory: it is the user's, and the job touches only what it wrote there.

Rules (README, "Bad input never fails the job"):
- ``--output`` is a literal directory (``pipeline.job_config.check_output_path``).
- A non-empty output is refused, unless ``--overwrite`` is passed and it holds a previous run
  of this job (its ``run.json``); even then only the files that run wrote are removed: the
  names listed in its ``run.json`` (``outputs``), or, for a run that never finished, the
  exact names this job gives its files. Anything else in the directory is kept.
- The job writes only into real directories: a symbolic link in place of ``predictions``,
  ``errors``, ``reconciliation``, ``run.json`` or ``counts.json`` is refused.
- ``run.json`` says ``"status": "incomplete"`` from the start of the run (written before
  --overwrite deletes anything) and is replaced by the complete record at its end; small files
  are written atomically (``transforms.score.write``).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import cli
from pipeline.flags import UsageError
from transforms.core.common import THUMBNAILS_JSON, is_local, local_path
from transforms.io.writers import write_text
from transforms.score.run_counts import COUNTS_JSON

RUN_JSON = "run.json"
# Marks a run.json as this job's, so --overwrite never mistakes another tool's for ours.
JOB = "batch-score"
DIRECTORIES = ("predictions", "errors", "reconciliation")

# Every name the job writes, relative to the output: shards of Beam's sinks, the summary (and
# the thumbnails beside it until the report is drawn), the report, the counts record, run.json,
# the temporary names of atomic writes, and Beam's temporary shard folders (left behind when a
# run is interrupted). Nothing else is ever removed.
# Beam numbers shards with at least five digits (``%05d``): more past 99,999 shards.
_SHARD = r"part-\d{5,}-of-\d{5,}\.(?:jsonl|parquet|tfrecord\.gz)"
_SHARD_DIRS = r"(?:predictions|errors|reconciliation/elements)"
_COUNTS = re.escape(COUNTS_JSON)
_THUMBNAILS = re.escape(THUMBNAILS_JSON)
_SMALL = rf"(?:run\.json|{_COUNTS}|reconciliation/(?:summary\.json|report\.html|{_THUMBNAILS}))"
_OURS = re.compile(
    rf"^(?:{_SHARD_DIRS}/{_SHARD}|{_SMALL}"
    rf"|(?:reconciliation/)?\.(?:run\.json|run\.lock|{_COUNTS}|summary\.json|report\.html"
    rf"|{_THUMBNAILS})"
    rf"\.tmp-[0-9a-f]{{32}}"
    rf"|{_SHARD_DIRS}/beam-temp-part-[0-9a-f]{{32}}/[^/]+)$"
)

# run.json is small; a huge file under that name is not ours, and is not read into memory.
_MAX_RUN_JSON_BYTES = 64 * 1024 * 1024

# Held beside run.json while a run writes the output (``hold_output``); never listed, never
# removed by --overwrite, and not counted when asking whether an output is empty.
LOCK = "run.lock"
# A lock whose holder has not renewed it for this long is stale (its run was killed, perhaps
# on another machine); the holder renews it every HEARTBEAT_SECONDS.
LEASE_SECONDS = 10 * 60
HEARTBEAT_SECONDS = 60


def is_our_file(relative: str) -> bool:
    """Whether ``relative`` (a path inside the output) has a name this job writes."""
    return bool(_OURS.match(relative))


def _entries(directory: str) -> list[str]:
    if is_local(directory):
        names = os.listdir(directory) if os.path.isdir(directory) else []
        return [name for name in names if name != LOCK]
    lock = posixpath.join(directory.rstrip("/"), LOCK)
    found = FileSystems.match([posixpath.join(directory, "**")], limits=[2])[0].metadata_list
    return [m.path for m in found if m.path != lock]


def is_empty(output: str) -> bool:
    """Whether the literal folder ``output`` holds nothing (or does not exist)."""
    return not _entries(output)


def _files_under(output: str) -> list[str]:
    """Files at the top of ``output`` and inside the job's own folders, relative to output."""
    if not is_local(output):
        prefix = output.rstrip("/") + "/"
        found = FileSystems.match([prefix + "**"])[0].metadata_list
        return [m.path[len(prefix) :] for m in found]
    if not os.path.isdir(output):
        return []
    found = [name for name in os.listdir(output) if os.path.isfile(os.path.join(output, name))]
    for top in DIRECTORIES:
        if os.path.islink(os.path.join(output, top)):
            continue  # never reach out of the output through a link (nor, below, deeper ones)
        for directory, _, names in os.walk(os.path.join(output, top)):
            relative = os.path.relpath(directory, output)
            found.extend(posixpath.join(relative, name) for name in names)
    return found


def previous_run(output: str) -> dict | None:
    """The ``run.json`` of a previous run of this job in ``output``, or None."""
    path = posixpath.join(output, RUN_JSON)
    try:
        if is_local(path) and (os.path.islink(path) or not os.path.isfile(path)):
            return None
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as f:
            text = f.read(_MAX_RUN_JSON_BYTES + 1)
        if len(text) > _MAX_RUN_JSON_BYTES:
            return None
        record = json.loads(text.decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    # Records written before the "job" field carried these keys, and no other tool's would.
    if record.get("job") == JOB or {"matched", "accounted", "options"} <= record.keys():
        return record
    return None


def check_output(
    output: str, overwrite: bool, previous: Callable[[str], object | None] | None = None
) -> None:
    """Refuses an output the job must not write into, before any work.

    ``previous`` recognises an earlier output of the same tool (default: a scoring run's
    run.json); ``--overwrite`` is accepted only over one.

    Raises:
      UsageError: a file, not writable, a symbolic link where the job writes, not empty
        without --overwrite, or not empty without a previous run of this job.
    """
    if is_local(output):
        if os.path.exists(output) and not os.path.isdir(output):
            raise UsageError(f"--output {output!r} is a file; pass a directory")
        parent = output
        while not os.path.exists(parent):
            parent = os.path.dirname(os.path.abspath(parent))
        # Checked before permissions: a file has no execute bit, so os.access would wrongly
        # report "no write permission" and send the user chasing modes.
        if not os.path.isdir(parent):
            raise UsageError(
                f"--output {output!r} cannot be created: {parent} is a file, not a directory; "
                "choose another path"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(
                f"--output {output!r} is not writable (no write permission on {parent})"
            )
        for name in (*DIRECTORIES, "reconciliation/elements", RUN_JSON, COUNTS_JSON):
            path = os.path.join(output, name)
            if os.path.islink(path):
                raise UsageError(
                    f"--output {output!r}: {name} is a symbolic link; the job writes only into "
                    "a directory of its own: remove the link or choose a new directory"
                )
            if (
                name not in (RUN_JSON, COUNTS_JSON)
                and os.path.exists(path)
                and not os.path.isdir(path)
            ):
                raise UsageError(
                    f"--output {output!r}: {name} is a file where the job writes a directory; "
                    "choose a new directory"
                )
    if not _entries(output):
        return
    if not overwrite:
        raise cli.output_not_empty(output)
    recognised = (previous or previous_run)(output)
    if recognised is None:
        raise UsageError(
            f"--output {output!r} is not empty and holds no previous run of this job"
            + (" (no run.json of ours)" if previous is None else "")
            + "; --overwrite replaces only a previous run: choose a new directory"
        )
    if previous is None:
        _refuse_shard_names_taken(output, recognised)


# What Beam's sinks treat as their shards (``part-*-of-NNNNN``): when they finalize, they
# delete any file of that shape, so none that --overwrite keeps may stay where they write.
_SHARD_SHAPE = re.compile(rf"^{_SHARD_DIRS}/part-[^/]*-of-\d+\.(?:jsonl|parquet|tfrecord\.gz)$")


def _refuse_shard_names_taken(output: str, previous: dict) -> None:
    """Refuses an output where --overwrite would keep a file named like Beam's shards (a
    user's, or one a finished run did not list): the new run's sink would delete it."""
    doomed = set(files_to_replace(output, previous))
    for relative in sorted(_files_under(output)):
        if _SHARD_SHAPE.match(relative) and relative not in doomed:
            raise UsageError(
                f"--output {output!r}: {relative} is named like the job's shards but is not "
                "the previous run's, and writing there would replace it: move it away or "
                "choose a new directory"
            )


def files_to_replace(output: str, previous: dict) -> list[str]:
    """What ``--overwrite`` removes: the files the previous run wrote (relative paths).

    A finished run listed them in its run.json; a run that never finished could not, so
    every file bearing one of this job's names goes (stale shards would otherwise mix with
    the new run's). Beam's temporary shards and atomic-write leftovers always go.
    """
    recorded = previous.get("outputs")
    listed = set(recorded) if isinstance(recorded, list) else None
    doomed = []
    for relative in _files_under(output):
        if not is_our_file(relative):
            continue
        leftover = "/beam-temp-" in relative or ".tmp-" in relative
        if listed is None or relative in listed or relative == RUN_JSON or leftover:
            doomed.append(relative)
    return sorted(doomed)


def prepare_output(output: str, overwrite: bool, incomplete: dict | None = None) -> None:
    """Marks ``output``'s run.json incomplete, then removes the previous run's files when
    overwriting; never anything else.

    run.json is replaced first, so a run killed while deleting leaves an ``incomplete``
    record (whose next --overwrite removes every file of this job's names), never the old
    ``complete`` one over partial data. Deletes nothing unless ``output`` holds a run.json of
    this job (checked again here, so a caller that skipped ``check_output`` cannot delete a
    stranger's files).

    Args:
      incomplete: the run.json to write first (default: ``{"job", "status": "incomplete"}``).
    """
    run_json = posixpath.join(output, RUN_JSON)
    previous = previous_run(output)
    if previous is None and FileSystems.exists(run_json):
        return  # not ours (check_output refuses it): touch nothing
    doomed = files_to_replace(output, previous) if overwrite and previous is not None else []
    record = incomplete or {"job": JOB, "status": "incomplete"}
    write_json(run_json, record)
    doomed = [relative for relative in doomed if relative != RUN_JSON]
    if doomed:
        FileSystems.delete([posixpath.join(output, relative) for relative in doomed])
    if doomed and is_local(output):
        # Folders the previous run left empty go too (deepest first); a folder that still
        # holds anything (a user's file) stays. Remote stores have no folders.
        temporary = sorted({posixpath.dirname(r) for r in doomed if "/beam-temp-" in r})
        for relative in (*temporary, "reconciliation/elements", *DIRECTORIES):
            with contextlib.suppress(OSError):  # rmdir removes only an empty directory
                os.rmdir(os.path.join(output, relative))


def written_files(output: str, before: set[str] = frozenset()) -> list[str]:
    """The files of this job's names in ``output`` that were not there before the run.

    The summary, the report and the counts record are rewritten by every run (that
    reconciles), so they count even if a file of that name was there before.
    """
    rewritten = {"reconciliation/summary.json", "reconciliation/report.html", COUNTS_JSON}
    return sorted(
        relative
        for relative in _files_under(output)
        if is_our_file(relative)
        and relative != RUN_JSON
        and ".tmp-" not in relative
        and "/beam-temp-" not in relative
        and (relative not in before or relative in rewritten)
    )


def our_files(output: str) -> set[str]:
    """Files with this job's names now in ``output`` (a snapshot before the run)."""
    return {relative for relative in _files_under(output) if is_our_file(relative)}


def write_json(path: str, record: dict) -> None:
    """Writes a small JSON file atomically (temporary name, then rename)."""
    write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> dict:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def _lock_is_stale(holder: dict | None, age_seconds: float) -> bool:
    """Whether a lock's run is gone: its pid is not alive on this host, or it has not renewed
    the lease for LEASE_SECONDS (by its heartbeat, or for an unreadable lock its file's age)."""
    if not isinstance(holder, dict):
        return age_seconds > LEASE_SECONDS
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
    heartbeat = holder.get("heartbeat")
    if not isinstance(heartbeat, int | float):
        return age_seconds > LEASE_SECONDS
    return time.time() - heartbeat > LEASE_SECONDS


def _read_lock(path: str) -> tuple[dict | None, float] | None:
    """(the lock's record or None when unreadable, its age in seconds); None: no lock."""
    try:
        found = FileSystems.match([path])[0].metadata_list
        if not found:
            return None
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            text = f.read(64 * 1024)
    except OSError:
        return None
    age = time.time() - (found[0].last_updated_in_seconds or 0)
    try:
        record = json.loads(text.decode("utf-8"))
    except ValueError:
        record = None
    return record, age


class _Lease:
    """This run's lock record, renewed by a daemon thread until released."""

    def __init__(self, output: str):
        self.path = posixpath.join(output, LOCK)
        self.record = {
            "job": JOB,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "heartbeat": time.time(),
            "token": uuid.uuid4().hex,
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True, name="output-lease")

    def text(self) -> str:
        return json.dumps(self.record, sort_keys=True) + "\n"

    def start(self) -> None:
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.record["heartbeat"] = time.time()
            with contextlib.suppress(Exception):  # a missed beat is retried at the next
                write_text(self.path, self.text())

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.holds():  # a lock taken over as stale by another run is theirs now
            with contextlib.suppress(OSError):
                FileSystems.delete([self.path])

    def holds(self) -> bool:
        current = _read_lock(self.path)
        holder = current[0] if current is not None else None
        return isinstance(holder, dict) and holder.get("token") == self.record["token"]


def _refuse_held(output: str, holder: dict | None) -> UsageError:
    who = (
        f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
        if isinstance(holder, dict)
        else "an unreadable lock"
    )
    return UsageError(
        f"--output {output!r} is in use by another run ({who}); wait for it to finish, or "
        f"remove {posixpath.join(output, LOCK)} if that run is gone"
    )


@contextlib.contextmanager
def hold_output(output: str):
    """Owns ``output`` exclusively while the block runs: ``OUTPUT/run.lock`` (holder pid, host,
    start, heartbeat) is created atomically (locally ``O_EXCL``; on object stores checked,
    written, then read back, the best they offer through FileSystems), renewed every
    HEARTBEAT_SECONDS and removed at the end. A stale lock (``_lock_is_stale``) is taken over.

    Raises:
      UsageError: another live run holds the output.
    """
    lease = _Lease(output)
    if is_local(output):
        path = local_path(lease.path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        for attempt in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                current = _read_lock(lease.path)
                holder, age = current if current is not None else (None, 0.0)
                if attempt or current is None or not _lock_is_stale(holder, age):
                    raise _refuse_held(output, holder) from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(lease.text())
            break
    else:
        current = _read_lock(lease.path)
        if current is not None and not _lock_is_stale(*current):
            raise _refuse_held(output, current[0])
        write_text(lease.path, lease.text())
        if not lease.holds():  # another run wrote it at the same moment: theirs
            raise _refuse_held(output, (_read_lock(lease.path) or (None, 0))[0])
    lease.start()
    try:
        yield
    finally:
        lease.release()
