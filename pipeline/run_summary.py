"""What a user sees after a scoring run: the counts, where the outputs are, the errors by
reason, the reconciliation's guarantee and diagnosis; and the exit status they imply."""

from __future__ import annotations

import posixpath
import sys

from apache_beam.io.filesystems import FileSystems

from pipeline import failure, outputs
from pipeline.flags import EXIT_FAILED_RUN, EXIT_MISMATCH
from pipeline.job_config import JobConfig
from transforms.score.run_counts import COUNTS_JSON


def print_run_summary(config: JobConfig) -> int:
    """Prints what a user wants to see after a run; returns the exit status."""
    record = outputs.read_json(posixpath.join(config.output, "run.json"))
    if record["matched"] is None:
        print(
            f"not accounted: the job wrote no counts record "
            f"({posixpath.join(config.output, COUNTS_JSON)}), so what it scored is unknown; "
            f"finished in {record['wall_seconds']:.1f} s"
        )
    else:
        print(
            f"scored {record['scored']:,} images, {record['errors']:,} errors, "
            f"{record.get('non_finite_scores', 0):,} with non-finite scores "
            f"(matched {record['matched']:,}, accounted: {str(record['accounted']).lower()}), "
            f"{record['images_per_second']:,.1f} images/s over {record['wall_seconds']:.1f} s"
        )
    if record.get("skipped"):
        print(f"skipped {record['skipped']:,} images already scored (--skip_existing)")
    if record.get("skip_existing_unreadable_lines"):
        print(
            f"note: {record['skip_existing_unreadable_lines']:,} line(s) of the --skip_existing "
            "runs' predictions hold no readable record (cut off or not JSON); their keys, if "
            "any, were scored again"
        )
    print(f"predictions: {posixpath.join(config.output, 'predictions')}/")
    # Errors by reason, most frequent first: "3 unsupported_format" says more than "3 errors".
    by_reason = sorted((record.get("errors_by_reason") or {}).items(), key=lambda kv: -kv[1])
    reasons = ", ".join(f"{count:,} {reason}" for reason, count in by_reason)
    errors_dir = posixpath.join(config.output, "errors")
    print(f"errors:      {errors_dir}/" + (f" ({reasons})" if reasons else ""))
    status = 0
    summary_path = posixpath.join(config.output, "reconciliation", "summary.json")
    if config.reconcile_fraction > 0 and FileSystems.exists(summary_path):
        summary = outputs.read_json(summary_path)
        print(f"reconciliation: {summary['guarantee']}")
        for cause in summary["diagnosis"]:
            print(f"  {cause['cause']}: {cause['evidence']}")
        for warning in summary.get("model_warnings", []):
            print(f"  model warning ({warning['kind']}, {warning['where']}): {warning['message']}")
        print(f"report:      {posixpath.join(config.output, 'reconciliation', 'report.html')}")
        # inconclusive is no evidence of agreement: a gate must not let it through.
        if summary["verdict"] != "pass" and config.fail_on_mismatch:
            status = EXIT_MISMATCH
    if record.get("failure"):
        # Outputs are complete, but a run that scored nothing (or too little) must not pass.
        print(f"batch-score: failed: {failure.describe(record['failure'])}", file=sys.stderr)
        status = EXIT_FAILED_RUN
    return status
