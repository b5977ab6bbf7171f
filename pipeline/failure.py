"""Why a finished run failed (exit status 4): inputs matched and nothing scored, or more errors
than ``--max_error_rate`` allows; with its top error reasons and, where the failing files'
bytes say so, a hint (``these look like TFRecord files: --input_format tfrecord``).

Read after the job, on the launcher, from the run record and the first few error records: the
outputs stay complete, and ``run.json`` carries the ``failure`` this returns.
"""

from __future__ import annotations

import json
import os
import posixpath

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.core import file_checks, records, sniff
from transforms.core.common import is_local, local_path

NOTHING_SCORED, MAX_ERROR_RATE = "nothing_scored", "max_error_rate"
TOP_REASONS = 3
# Error records whose file may be of another --input_format (the others say why themselves).
_SNIFFED = {
    records.UNSUPPORTED_FORMAT,
    records.CORRUPT_IMAGE,
    records.TRUNCATED_IMAGE,
    records.CORRUPT_SHARD,
    records.INVALID_RECORD,
    records.MISSING_IMAGE,
}
_FILES_SNIFFED, _LINES_READ = 5, 1000


def of_run(record: dict, output: str, input_format: str, max_error_rate: float | None):
    """The run's ``failure`` ({reason, message, top_error_reasons, hint}), or None.

    ``record`` is the run record run.json gets (its counts, however they were counted);
    ``output`` the run's output, whose error records the hint reads."""
    matched, scored = record.get("matched", 0), record.get("scored", 0)
    errors, skipped = record.get("errors", 0), record.get("skipped", 0)
    to_score = matched - skipped
    if to_score > 0 and scored == 0:
        reason = NOTHING_SCORED
        inputs = "1 input" if to_score == 1 else f"{to_score:,} inputs"
        message = f"nothing was scored: the {inputs} to score all became error records"
    elif max_error_rate is not None and matched and errors / matched > max_error_rate:
        reason = MAX_ERROR_RATE
        message = (
            f"{errors:,} errors in {matched:,} matched inputs ({errors / matched:.1%}) exceed "
            f"--max_error_rate {max_error_rate:g}"
        )
    else:
        return None
    by_reason = record.get("errors_by_reason") or {}
    top = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    return {
        "reason": reason,
        "message": message,
        "top_error_reasons": dict(top),
        "hint": hint(output, input_format),
    }


def describe(failure: dict) -> str:
    """One line for the console: what failed, the top reasons, the hint."""
    top = ", ".join(f"{count:,} {reason}" for reason, count in failure["top_error_reasons"].items())
    line = failure["message"] + (f" (top error reasons: {top})" if top else "")
    return line + (f"; {failure['hint']}" if failure.get("hint") else "")


def hint(output: str, input_format: str) -> str | None:
    """What the first few failing files look like, as a --input_format to try; None when they
    do not say (or cannot be read)."""
    files = _failing_files(output, input_format)
    return sniff.hint(input_format, [_kind(path) for path in files]) if files else None


def _failing_files(output: str, input_format: str) -> list[str]:
    """Distinct files of the first error records whose reason a wrong format can explain."""
    found: list[str] = []
    try:
        shards = FileSystems.match([posixpath.join(output, "errors", "part-*")])[0].metadata_list
    except Exception:  # noqa: BLE001 - no errors written: nothing to say
        return found
    for shard in sorted(m.path for m in shards):
        with FileSystems.open(shard, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for number, line in enumerate(f):
                if number >= _LINES_READ or len(found) >= _FILES_SNIFFED:
                    return found
                error = json.loads(line)
                # A shard record's uri is SHARD#INDEX; a file's is the file.
                uri = error.get("uri", "")
                path = uri if input_format == "files" else uri.rsplit("#", 1)[0]
                if error.get("reason") in _SNIFFED and path not in found:
                    found.append(path)
    return found


def _kind(path: str) -> str | None:
    try:
        if is_local(path):
            # Never opens a FIFO or device (it could block or never end).
            size = file_checks.stat_regular_file(local_path(path)).st_size
        else:
            size = FileSystems.match([path], limits=[1])[0].metadata_list[0].size_in_bytes
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            head = f.read(sniff.HEAD_BYTES)
            tail = b""
            if size > len(head):
                f.seek(size - sniff.TAIL_BYTES, os.SEEK_SET)
                tail = f.read(sniff.TAIL_BYTES)
            else:
                tail = head[-sniff.TAIL_BYTES :]
    except Exception:  # noqa: BLE001 - an unreadable file gives no hint
        return None
    return sniff.kind_of(head, tail)
