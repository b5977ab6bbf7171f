"""Compares two runs' predictions key by key: ``python -m pipeline.compare`` (``batch-compare``).

    python -m pipeline.compare --baseline RUN_A --candidate RUN_B --output DIR [flags]
        [Beam flags: --runner, --direct_num_workers, Dataflow's ...]

    ReadPredictions[baseline] --+
                                +-> ComparePredictions (CoGroupByKey by key) -> WriteComparison
    ReadPredictions[candidate] -+

A Beam job like the scoring one, so ten million predictions compare on Dataflow as a thousand do
locally. Outputs ``DIR/summary.json``, ``DIR/elements/part-*.jsonl`` and ``DIR/report.html``.
The flags, their defaults and the exit codes are in ``pipeline.job_flags.COMPARE`` (what --help
shows); the command line is parsed as the scoring job's is (``pipeline.options``), so Beam's
flags pass through and anything else is refused.
"""

from __future__ import annotations

import sys

from pipeline import cli, disk_full, quiet
from pipeline.flags import EXIT_INTERRUPTED, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, LOG_LEVELS
from pipeline.job_flags import COMPARE

if __name__ == "__main__":
    # --help answers from the flag tables (pipeline.cli) before Beam is imported below.
    cli.exit_on_help(COMPARE, sys.argv[1:])
    cli.exit_on_early_refusal(COMPARE, sys.argv[1:], "batch-compare")

import dataclasses
import math
import posixpath
import re

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from pipeline import outputs, runners
from pipeline.credentials import check_gcs_credentials
from pipeline.flags import UsageError
from pipeline.job_config import check_output_path
from pipeline.options import parse_beam_command
from pipeline.preflight import check_paths_reach_workers
from transforms.compare.compare_predictions import ComparePredictions, RunsToCompare
from transforms.compare.write_comparison import WriteComparison
from transforms.core import run_changes
from transforms.io.read_predictions import (
    ReadPredictions,
    RunReadError,
    first_record,
    run_format,
    run_state_note,
)

PROG = "batch-compare"
# An incomplete comparison has no summary.json, so --overwrite does not take it.
INCOMPLETE = "the comparison there is incomplete: free space, then rerun into a new --output"
# A comparison's summary.json has these; a scoring run's or a user's file does not.
_SUMMARY_KEYS = {"coverage", "changes", "cause", "verdict"}
_ELEMENT_SHARD = re.compile(r"part-\d{5,}-of-\d{5,}\.jsonl")  # Beam: %05d, or more
FAILING_VERDICTS = ("fail", "changed", "inconclusive")


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """The comparison's flags (``pipeline.job_flags.COMPARE``), validated."""

    baseline: str
    candidate: str
    output: str
    atol: float
    rtol: float
    fail_on_mismatch: bool
    top_k_only: bool
    sample_fraction: float
    overwrite: bool
    num_shards: int
    log_level: str
    workers_share_filesystem: bool = False

    @classmethod
    def from_flags(cls, flags) -> CompareConfig:
        """Validates the parsed flags and freezes them.

        Raises:
          UsageError: an impossible value.
        """
        if (
            not (math.isfinite(flags.atol) and math.isfinite(flags.rtol))
            or min(flags.atol, flags.rtol) < 0
        ):
            raise UsageError(
                f"--atol {flags.atol} --rtol {flags.rtol}: both must be finite and non-negative"
            )
        if not 0.0 < flags.sample_fraction <= 1.0:
            raise UsageError(f"--sample_fraction {flags.sample_fraction}: must be in (0, 1]")
        if flags.num_shards < 0:
            raise UsageError("--num_shards must be >= 0")
        if flags.log_level not in LOG_LEVELS:
            raise UsageError(
                f"--log_level {flags.log_level!r}: choose one of {', '.join(LOG_LEVELS)}"
            )
        return cls(
            baseline=flags.baseline.rstrip("/"),
            candidate=flags.candidate.rstrip("/"),
            output=check_output_path(flags.output),
            atol=flags.atol,
            rtol=flags.rtol,
            fail_on_mismatch=flags.fail_on_mismatch,
            top_k_only=flags.top_k_only,
            sample_fraction=flags.sample_fraction,
            overwrite=flags.overwrite,
            num_shards=flags.num_shards,
            log_level=flags.log_level,
            workers_share_filesystem=flags.workers_share_filesystem,
        )


def parse_args(argv: list[str]) -> tuple[PipelineOptions, CompareConfig]:
    """Parses the command line once: Beam's flags as the runner's options, ours as a
    CompareConfig.

    Raises:
      UsageError: a missing or impossible value, or a flag neither we nor Beam know.
    """
    options, flags = parse_beam_command(COMPARE, argv)
    return options, CompareConfig.from_flags(flags)


def _run_json(run_dir: str) -> dict | None:
    path = posixpath.join(run_dir, "run.json")
    return outputs.read_json(path) if FileSystems.exists(path) else None


def preflight(config: CompareConfig, options: PipelineOptions) -> dict:
    """Checks both runs and the output before any work; returns what the job needs.

    Raises:
      UsageError: a path holding no run, mixed formats, different class counts, a local path
        on a distributed runner, or an output that may not be written.
    """
    named = [(f"--{flag}", getattr(config, flag)) for flag in ("baseline", "candidate", "output")]
    check_gcs_credentials(named)
    check_paths_reach_workers(options, named, config.workers_share_filesystem)
    facts, notes = {}, []
    for side in ("baseline", "candidate"):
        path = getattr(config, side)
        try:
            facts[f"{side}_format"] = run_format(path)
            if facts[f"{side}_format"] == "tfrecord":
                # PredictionLogs need TensorFlow, whose import writes start-up lines to fd 2.
                quiet.import_tensorflow_quietly()
            facts[f"{side}_first"] = first_record(path)
        except RunReadError as e:
            raise UsageError(f"--{side} {e}") from None
        facts[f"{side}_run"] = _run_json(path)
        notes.append(run_state_note(f"--{side}", path))
    first_b, first_c = facts["baseline_first"], facts["candidate_first"]
    if first_b and first_c and first_b.get("scores") and first_c.get("scores"):
        nb, nc = len(first_b["scores"]), len(first_c["scores"])
        if nb != nc:
            raise UsageError(
                f"the runs score different class counts ({nb} in --baseline, {nc} in "
                "--candidate): their scores cannot be compared class by class"
            )
    outputs.check_output(config.output, config.overwrite, previous_comparison)
    # Said once every check has passed: a refusal stays one line.
    for note in filter(None, notes):
        print(note, file=sys.stderr)
    return facts


def previous_comparison(output: str) -> dict | None:
    """The summary.json of an earlier comparison in ``output`` (what --overwrite replaces)."""
    path = posixpath.join(output, "summary.json")
    try:
        if not FileSystems.exists(path):
            return None
        summary = outputs.read_json(path)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.keys() >= _SUMMARY_KEYS else None


def comparison_files(output: str) -> list[str]:
    """The files a comparison wrote in ``output``, by their exact names; nothing else."""
    names = [posixpath.join(output, name) for name in ("summary.json", "report.html")]
    found = [path for path in names if FileSystems.exists(path)]
    elements = posixpath.join(output, "elements", "part-*-of-*.jsonl")
    found += [
        m.path
        for m in FileSystems.match([elements])[0].metadata_list
        if _ELEMENT_SHARD.fullmatch(posixpath.basename(m.path))
    ]
    return found


def build_pipeline(pipeline: beam.Pipeline, config: CompareConfig, facts: dict) -> None:
    """Adds the whole comparison to ``pipeline``."""

    def read(side: str):
        return pipeline | f"ReadPredictions[{side}]" >> ReadPredictions(
            getattr(config, side), facts[f"{side}_format"]
        )

    runs = RunsToCompare(read("baseline"), read("candidate"))
    baseline_run, candidate_run = facts["baseline_run"], facts["candidate_run"]
    context = {
        "baseline": config.baseline,
        "candidate": config.candidate,
        "baseline_format": facts["baseline_format"],
        "candidate_format": facts["candidate_format"],
    }
    compared = runs | "ComparePredictions" >> ComparePredictions(
        config.atol,
        config.rtol,
        config.top_k_only,
        config.sample_fraction,
        changes=run_changes.run_changes(baseline_run, candidate_run),
        runs_known=baseline_run is not None and candidate_run is not None,
        context=context,
    )
    compared | "WriteComparison" >> WriteComparison(config.output, config.num_shards)


def run(argv=None, save_main_session=True):
    """Runs the comparison of a command line; returns the PipelineResult (waits for it).

    Raises:
      UsageError: bad arguments or unusable runs/output (nothing written).
    """
    options, config = parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_comparison(options, config, save_main_session)


def run_comparison(options: PipelineOptions, config: CompareConfig, save_main_session=True):
    """Runs the comparison of already parsed options (``parse_args``); waits for it.

    Raises:
      UsageError: unusable runs or output (nothing written).
    """
    options.view_as(SetupOptions).save_main_session = save_main_session
    facts = preflight(config, options)
    if config.overwrite and previous_comparison(config.output) is not None:
        doomed = comparison_files(config.output)
        if doomed:
            FileSystems.delete(doomed)
    pipeline = beam.Pipeline(runner=runners.in_process_runner(options), options=options)
    build_pipeline(pipeline, config, facts)
    result = pipeline.run()
    result.wait_until_finish()
    # Imported here: workers load this module's session and must not need matplotlib.
    from transforms.report.publish import write_comparison_report

    write_comparison_report(config.output)
    return result


def _print_summary(config: CompareConfig) -> int:
    summary = outputs.read_json(posixpath.join(config.output, "summary.json"))
    coverage = summary["coverage"]
    print(
        f"{summary['verdict'].upper()}: {summary['verdict_reason']} "
        f"(cause: {summary['cause']}; {summary['basis_note']})"
    )
    print(
        f"keys: {coverage['both']:,} in both, {coverage['only_baseline']:,} only in baseline, "
        f"{coverage['only_candidate']:,} only in candidate; {summary['identical']:,} identical, "
        f"{summary['within_tolerance']:,} within tolerance, {summary['mismatch']:,} mismatch, "
        f"{summary['non_finite']:,} non-finite, {summary['top1_flips']:,} top-1 flips"
    )
    for line in summary["evidence"]:
        print(f"  {line}")
    if summary.get("ambiguous"):
        keys = ", ".join(summary["ambiguous_keys"][:5])
        more = " ..." if summary["ambiguous"] > 5 else ""
        print(f"  {summary['ambiguous']:,} ambiguous keys (disagreeing duplicates): {keys}{more}")
    for change in summary["changes"][:10]:
        print(f"  changed {change['what']}: {change['baseline']} -> {change['candidate']}")
    print(f"report: {posixpath.join(config.output, 'report.html')}")
    failed = config.fail_on_mismatch and summary["verdict"] in FAILING_VERDICTS
    return EXIT_MISMATCH if failed else EXIT_OK


def main(argv=None) -> int:
    """The command line: runs the comparison and prints its summary; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if cli.wants_help(argv):
        cli.parser_for(COMPARE).print_help()
        return EXIT_OK
    quiet.configure_logging()
    try:
        options, config = parse_args(argv)
        quiet.configure_logging(config.log_level)
        with disk_full.quiet_when_disk_full():
            run_comparison(options, config)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; a comparison in --output is incomplete", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if not disk_full.is_disk_full(e):
            raise
        return disk_full.report(PROG, config.output, INCOMPLETE)
    return _print_summary(config)


if __name__ == "__main__":
    sys.exit(disk_full.exit_status(PROG, main))
