"""CountOutcomes: the job's accounting, counted from its own PCollections, as one small record.

    scored      -> "scored", "non_finite_scores", "exif_oriented" -+
    errors      -> "errors.<reason>"                            +-> Count.PerElement -+
    comparisons -> "reconciled"      (with reconciliation)     -+                    |
    the readers' singleton counts: matched, and with --skip_existing skipped and    +-> ToDict
    skip_existing_unreadable_lines ------------------------------------------------+
                                                                    -> OUTPUT/counts.json

``run.json``'s counts come from this record, which the launcher reads back after the job
(``read_counts``), not from metrics: a runner may report no committed metrics at all (Flink,
apache/beam#18287), and a count that is missing must never pass for zero. The counting is a
combine (each worker sends a few numbers, no element is shuffled); the record is written once,
atomically, through Beam's FileSystems (local or ``gs://``). No TensorFlow.
"""

from __future__ import annotations

import json
import posixpath
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.core.comparisons import SINGLE, ElementComparison
from transforms.core.records import Scored
from transforms.io.writers import write_text

COUNTS_JSON = "counts.json"
# The counts every record holds, besides ``errors_by_reason`` and the run's id.
COUNT_FIELDS = (
    "matched",
    "scored",
    "errors",
    "skipped",
    "non_finite_scores",
    "exif_oriented",
    "reconciled",
    "skip_existing_unreadable_lines",
)
_ERRORS_PREFIX = "errors."
# A real record is a few hundred bytes; a huge file under its name is not ours to read.
_MAX_BYTES = 1 << 20


def _scored_names(scored):
    yield "scored"
    if not np.all(np.isfinite(scored.scores)):
        yield "non_finite_scores"
    if scored.exif_orientation != 1:  # read from the header; TensorFlow's decoder ignores it
        yield "exif_oriented"


def _is_counted_comparison(comparison) -> bool:
    # As the "reconciled" metric: each sampled element against itself alone (not the sweep's
    # other batch sizes, nor the serving reference).
    return comparison.reference == SINGLE and not comparison.sweep


def counts_record(totals: dict[str, int], run_id: str) -> dict:
    """The counts record of ``totals`` (count name -> number; a name never seen is 0)."""
    by_reason = {
        name.removeprefix(_ERRORS_PREFIX): count
        for name, count in sorted(totals.items())
        if name.startswith(_ERRORS_PREFIX)
    }
    record = {field: totals.get(field, 0) for field in COUNT_FIELDS}
    record["errors"] = sum(by_reason.values())
    return record | {"errors_by_reason": by_reason, "run_id": run_id}


def _write_counts(totals: dict[str, int], path: str, run_id: str) -> str:
    write_text(path, json.dumps(counts_record(totals, run_id), indent=2, sort_keys=True) + "\n")
    return path


class Outcomes(NamedTuple):
    """The job's PCollections that CountOutcomes counts (None: that part did not run)."""

    scored: beam.PCollection  # Scored
    errors: beam.PCollection  # every stage's error records (dicts)
    # The readers' singleton counts (``ReadResult``): already counts, not elements to count.
    matched: beam.PCollection
    skipped: beam.PCollection | None = None  # with --skip_existing
    unreadable_lines: beam.PCollection | None = None  # with --skip_existing
    comparisons: beam.PCollection | None = None  # ElementComparison, with reconciliation


# Each singleton count of ``Outcomes`` -> its field in the record.
_SINGLETON_FIELDS = {
    "matched": "matched",
    "skipped": "skipped",
    "unreadable_lines": "skip_existing_unreadable_lines",
}


class CountOutcomes(beam.PTransform):
    """Counts the job's outcomes and writes them to ``OUTPUT/counts.json``.

    Args:
      outcomes: the ``Outcomes`` to count. Given here, and the stage applied to the pipeline:
        Beam refuses a tuple input with an absent (None) member.
      output: the job's output directory.
      run_id: names this run in the record, so the launcher never reads another run's.
    """

    def __init__(self, outcomes: Outcomes, output: str, run_id: str):
        super().__init__()
        self._outcomes = outcomes
        self._path = posixpath.join(output, COUNTS_JSON)
        self._run_id = run_id

    def expand(self, pbegin):
        outcomes = self._outcomes
        names = [
            outcomes.scored | "NameScored" >> beam.FlatMap(_scored_names).with_input_types(Scored),
            outcomes.errors | "NameErrors" >> beam.Map(lambda r: _ERRORS_PREFIX + r["reason"]),
        ]
        if outcomes.comparisons is not None:
            names.append(
                outcomes.comparisons
                | "KeepCounted"
                >> beam.Filter(_is_counted_comparison).with_input_types(ElementComparison)
                | "NameReconciled" >> beam.Map(lambda _: "reconciled")
            )
        counted = (
            names
            | "MergeNames" >> beam.Flatten()
            | "CountEach" >> beam.combiners.Count.PerElement()
        )
        singletons = [
            count | f"Name[{name}]" >> beam.Map(lambda n, name=name: (name, n))
            for field, name in _SINGLETON_FIELDS.items()
            if (count := getattr(outcomes, field)) is not None
        ]
        return (
            (counted, *singletons)
            | "MergeCounts" >> beam.Flatten()
            | "ToDict" >> beam.combiners.ToDict()
            | "WriteCounts" >> beam.Map(_write_counts, self._path, self._run_id)
        )


def read_counts(output: str, run_id: str) -> dict | None:
    """The counts record this run (``run_id``) wrote into ``output``, or None: missing (the
    runner never ran the write), unreadable, malformed, or another run's."""
    path = posixpath.join(output, COUNTS_JSON)
    try:
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as f:
            record = json.loads(f.read(_MAX_BYTES).decode("utf-8"))
    except Exception:  # noqa: BLE001 - any failure to read it leaves the counts unknown
        return None
    if not isinstance(record, dict) or record.get("run_id") != run_id:
        return None
    by_reason = record.get("errors_by_reason")
    numbers = [record.get(field) for field in COUNT_FIELDS]
    if not isinstance(by_reason, dict):
        return None
    numbers += by_reason.values()
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        return None
    return record
