"""The name of every metric the jobs report, in one module (as Beam's ``_MetricsCollector``
owns its step's): a stage counts under these constants, and whatever reads a metric back
(``run.json``'s ``model_loads``, tests) asks for the same constant, so a renamed counter cannot
leave a reader asking for a name nothing reports. Pure constants, no Beam.

The job's counts in ``run.json`` come from its own counts record, not from these metrics
(docs/contract.md); the metrics are for the runner's UI (Dataflow's "Custom counters").
"""

from __future__ import annotations

# The namespace of every metric the jobs report.
METRICS_NAMESPACE = "batch_score"

# The scoring job.
MATCHED = "matched"  # inputs the patterns matched
READ_ERRORS = "read_errors"
SKIPPED = "skipped"  # inputs --skip_existing found already scored
DECODE_ERRORS = "decode_errors"
SCORED = "scored"
MODEL_ERRORS = "model_errors"
NON_FINITE_SCORES = "non_finite_scores"
MODEL_LOADS = "model_loads"  # model copies loaded (run.json reads it back)
ERRORS = "errors"  # every dead letter, whatever the stage
RECONCILED = "reconciled"
RECONCILE_MISMATCHES = "reconcile_mismatches"
# The comparison job (and --skip_existing, which reads an earlier run's predictions).
UNREADABLE_PREDICTION_LINES = "unreadable_prediction_lines"

_ERRORS_BY_REASON = ERRORS + "."
_COMPARED_BY_STATUS = "compare."


def errors_by_reason(reason: str) -> str:
    """The counter of the dead letters of one reason (``errors.<reason>``)."""
    return _ERRORS_BY_REASON + reason


def compared_by_status(status: str) -> str:
    """The counter of the compared keys of one status (``compare.<status>``)."""
    return _COMPARED_BY_STATUS + status


# The fixed names, for the test that they are unique and that no use site spells one out.
NAMES = (
    MATCHED,
    READ_ERRORS,
    SKIPPED,
    DECODE_ERRORS,
    SCORED,
    MODEL_ERRORS,
    NON_FINITE_SCORES,
    MODEL_LOADS,
    ERRORS,
    RECONCILED,
    RECONCILE_MISMATCHES,
    UNREADABLE_PREDICTION_LINES,
)
PREFIXES = (_ERRORS_BY_REASON, _COMPARED_BY_STATUS)
