"""The output directory: refusing to clobber it, clearing old shards, small JSON files."""

from __future__ import annotations

import json
import os
import posixpath

from apache_beam.io.filesystems import FileSystems

from pipeline.options import UsageError
from transforms.common import is_local
from transforms.write import write_text

# What a run writes; --overwrite removes exactly these, so no stale shard survives a rerun.
LAYOUT = ("predictions", "errors", "reconciliation", "run.json")


def _entries(directory: str) -> list[str]:
    if is_local(directory):
        return os.listdir(directory) if os.path.isdir(directory) else []
    found = FileSystems.match([posixpath.join(directory, "**")], limits=[1])[0].metadata_list
    return [m.path for m in found]


def check_output(output: str, overwrite: bool) -> None:
    """Refuses an output that exists with content (unless --overwrite) or cannot be written."""
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
    if _entries(output) and not overwrite:
        raise UsageError(
            f"--output {output!r} is not empty; pass --overwrite to replace its outputs "
            "or choose a new directory"
        )


def prepare_output(output: str, overwrite: bool) -> None:
    """Removes the previous run's outputs (only our layout) when overwriting."""
    if not overwrite:
        return
    doomed = []
    for name in LAYOUT:
        path = posixpath.join(output, name)
        if FileSystems.exists(path):
            doomed.append(path)
    if doomed:
        FileSystems.delete(doomed)


def write_json(path: str, record: dict) -> None:
    write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> dict:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))
