"""ComparePredictions: two runs' prediction records, joined by key -> element records + summary.

    baseline, candidate -> SampleKeys -> PackByKey -> JoinByKey (CoGroupByKey) -> CompareKeys
        -> elements (every key that is not bitwise identical, and keys only one run has)
        -> SummarizeComparison (a mergeable CombineFn) -> one summary dict

Nothing holds all keys in one process: the join is a shuffle, the summary an accumulator of
counts and bounded tables (flips, class shares, |diff| histogram, the worst few elements).
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.core import metric_names, run_diff, run_diff_summary
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.core.records import is_sampled
from transforms.io.read_predictions import ReadPredictionsResult


# (key, {"baseline": [packed records], "candidate": [...]}), as JoinByKey groups them.
@beam.typehints.with_input_types(tuple[str, dict])
class _CompareKeysDoFn(beam.DoFn):
    def __init__(self, atol: float, rtol: float, top_k_only: bool):
        self._args = (atol, rtol, top_k_only)
        self._counters = {
            status: Metrics.counter(METRICS_NAMESPACE, metric_names.compared_by_status(status))
            for status in run_diff.STATUSES
        }

    def process(self, joined):
        key, grouped = joined
        baseline, candidate = list(grouped["baseline"]), list(grouped["candidate"])
        record = run_diff.compare_key(key, baseline, candidate, *self._args)
        self._counters[record["status"]].inc()
        yield record


class SummarizeComparison(beam.CombineFn):
    """Element records -> the summary dict of ``run_diff_summary.summarize`` (plus ``context``)."""

    def __init__(self, atol, rtol, sample_fraction, changes, runs_known, context):
        self._args = (atol, rtol, sample_fraction, changes, runs_known)
        self._context = context

    def create_accumulator(self):
        return run_diff.empty_accumulator()

    def add_input(self, acc, record):
        return run_diff.add_element(acc, record)

    def merge_accumulators(self, accumulators):
        return run_diff.merge_accumulators(accumulators)

    def extract_output(self, acc):
        return self._context | run_diff_summary.summarize(acc, *self._args)


def with_unreadable_lines(summary: dict, baseline: int, candidate: int) -> dict:
    """The summary with ``unreadable_lines`` per run: JSONL lines holding no record (cut off,
    not JSON), left out of the comparison (their keys count as missing there), and said in
    the evidence."""
    evidence = list(summary.get("evidence", []))
    for flag, count in (("--baseline", baseline), ("--candidate", candidate)):
        if count:
            evidence.append(
                f"{count:,} line(s) of {flag}'s predictions hold no readable record (cut off "
                "or not JSON) and were left out"
            )
    return summary | {
        "unreadable_lines": {"baseline": baseline, "candidate": candidate},
        "evidence": evidence,
    }


class RunsToCompare(NamedTuple):
    """ComparePredictions' input: each run's ``ReadPredictions`` outputs."""

    baseline: ReadPredictionsResult
    candidate: ReadPredictionsResult


class ComparisonResult(NamedTuple):
    """ComparePredictions' outputs (PCollections)."""

    elements: beam.PCollection  # element records worth writing (dicts)
    summary: beam.PCollection  # singleton: the summary dict (summary.json)


class ComparePredictions(beam.PTransform):
    """Joins two runs' predictions by key and compares them.

    Args:
      atol, rtol: the tolerance (|candidate - baseline| <= atol + rtol * |baseline|, same top-1).
      top_k_only: compare the top-k lists even where both runs wrote full score vectors.
      sample_fraction: compare only keys whose stable hash falls below it (1.0: every key);
        the summary then bounds the rates over all keys.
      changes: ``run_changes.run_changes`` of the two run.json records.
      runs_known: False when a run.json is missing (the cause is then ``unknown``).
      context: extra fields for the summary (the run paths, their formats).

    Input: ``RunsToCompare``, the two runs' ``ReadPredictions`` outputs.
    Returns: a ``ComparisonResult``: ``elements``, the element records worth writing, and
    ``summary``, one summary dict.
    """

    def __init__(
        self,
        atol: float,
        rtol: float,
        top_k_only: bool = False,
        sample_fraction: float = 1.0,
        changes: list | None = None,
        runs_known: bool = True,
        context: dict | None = None,
    ):
        super().__init__()
        self._atol, self._rtol, self._top_k_only = atol, rtol, top_k_only
        self._fraction = sample_fraction
        self._summary_args = (changes or [], runs_known, context or {})

    def expand(self, runs):
        keyed = {}
        for name, run in runs._asdict().items():
            records = run.records
            if self._fraction < 1.0:
                fraction = self._fraction
                records = records | f"SampleKeys[{name}]" >> beam.Filter(
                    lambda r, f=fraction: is_sampled(r["key"], f)
                )
            # Only what the comparison needs crosses the shuffle, packed small.
            keyed[name] = records | f"PackByKey[{name}]" >> beam.Map(
                lambda r: (r["key"], run_diff.pack(r))
            )
        elements = (
            keyed
            | "JoinByKey" >> beam.CoGroupByKey()
            | "CompareKeys"
            >> beam.ParDo(_CompareKeysDoFn(self._atol, self._rtol, self._top_k_only))
        )
        changes, runs_known, context = self._summary_args
        summary = elements | "SummarizeComparison" >> beam.CombineGlobally(
            SummarizeComparison(
                self._atol, self._rtol, self._fraction, changes, runs_known, context
            )
        )
        unreadable = {
            name: beam.pvalue.AsSingleton(
                run.unreadable | f"CountUnreadable[{name}]" >> beam.combiners.Count.Globally()
            )
            for name, run in runs._asdict().items()
        }
        summary = summary | "NoteUnreadableLines" >> beam.Map(with_unreadable_lines, **unreadable)
        worth_writing = elements | "KeepDiffering" >> beam.Filter(
            lambda r: r["status"] != run_diff.IDENTICAL
        )
        return ComparisonResult(worth_writing, summary)
