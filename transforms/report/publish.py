"""Publishing the reports: once a job has finished, the launcher reads the summary.json it wrote
and writes report.html beside it, atomically, through FileSystems (local or gs://).

Drawing is the launcher's: the jobs' workers write summaries only and never import matplotlib
(nor this package). A run interrupted before this step has no report.html at all, never one
that looks complete.
"""

from __future__ import annotations

import json
import posixpath

from apache_beam.io.filesystems import FileSystems

from transforms.core.common import THUMBNAILS_JSON
from transforms.io.writers import write_text
from transforms.report.comparison_page import render_compare_report
from transforms.report.reconciliation_page import render_report

REPORT_HTML = "report.html"


def _read_json(path: str):
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def write_report(directory: str, run_info: dict, counts: dict | None = None) -> str:
    """Writes ``DIRECTORY/report.html`` from the scoring job's ``DIRECTORY/summary.json`` and
    the worst elements' thumbnails the job left beside it, which it then removes.

    Args:
      directory: the job's ``OUTPUT/reconciliation``.
      run_info: what the report names the run by (``render_report``'s ``run_info``).
      counts: the job's counts record (``counts.json``), whose ``matched`` and ``errors`` the
        report shows; None where the job wrote none.

    Returns:
      The report's path.
    """
    summary = _read_json(posixpath.join(directory, "summary.json"))
    thumbnails_path = posixpath.join(directory, THUMBNAILS_JSON)
    left = FileSystems.exists(thumbnails_path)
    thumbnails = _read_json(thumbnails_path) if left else []
    for worst, thumbnail in zip(summary.get("worst") or [], thumbnails, strict=False):
        if isinstance(thumbnail, str):
            worst["thumbnail"] = thumbnail
    shown = {name: counts[name] for name in ("matched", "errors") if name in (counts or {})}
    path = posixpath.join(directory, REPORT_HTML)
    write_text(path, render_report(summary, run_info | shown))
    if left:
        FileSystems.delete([thumbnails_path])
    return path


def write_comparison_report(directory: str) -> str:
    """Writes ``DIRECTORY/report.html`` from the comparison job's ``DIRECTORY/summary.json``;
    returns its path."""
    summary = _read_json(posixpath.join(directory, "summary.json"))
    path = posixpath.join(directory, REPORT_HTML)
    write_text(path, render_compare_report(summary))
    return path
