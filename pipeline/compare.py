"""Compares two runs' predictions key by key: ``python -m pipeline.compare`` (``batch-compare``).

    python -m pipeline.compare --baseline RUN_A --candidate RUN_B --output DIR
        [--atol 1e-5] [--rtol 1e-4] [--fail_on_mismatch] [--top_k_only] [--sample_fraction 1]
        [Beam flags: --runner, --direct_num_workers, Dataflow's ...]

    ReadPredictions[baseline] --+
                                +-> ComparePredictions (CoGroupByKey by key) -> WriteComparison
    ReadPredictions[candidate] -+

A Beam job like the scoring one, so ten million predictions compare on Dataflow as a thousand do
locally. Outputs ``DIR/summary.json``, ``DIR/elements/part-*.jsonl`` and ``DIR/report.html``.
Exit status: 0 done; 2 bad arguments or unusable runs (one line, nothing written); 3 with
``--fail_on_mismatch`` when the verdict is ``fail``, ``changed`` or ``inconclusive``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import posixpath
import re
import sys

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    _BeamArgumentParser,
)

from pipeline import cli, outputs
from pipeline.options import UsageError, check_output_path
from transforms import run_diff
from transforms.common import is_local
from transforms.compare_predictions import ComparePredictions
from transforms.read_predictions import ReadPredictions, RunReadError, first_record, run_format
from transforms.write_comparison import WriteComparison

PROG = "batch-compare"
# A comparison's summary.json has these; a scoring run's or a user's file does not.
_SUMMARY_KEYS = {"coverage", "changes", "cause", "verdict"}
_ELEMENT_SHARD = re.compile(r"part-\d{5}-of-\d{5}\.jsonl")
FAILING_VERDICTS = ("fail", "changed", "inconclusive")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.compare",
        description="Compare two runs' predictions key by key (a Beam job).",
        epilog="Beam's own flags (--runner, --direct_num_workers, Dataflow's --project --region "
        "--temp_location --setup_file ...) pass through. Exit status: 0 done, 2 bad arguments or "
        "unusable runs, 3 with --fail_on_mismatch when the verdict is fail, changed or "
        "inconclusive.",
        allow_abbrev=False,
    )
    parser.add_argument("--baseline", help="the earlier run's output directory (required)")
    parser.add_argument("--candidate", help="the later run's output directory (required)")
    parser.add_argument("--output", help="directory for summary.json, elements/, report.html")
    parser.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (1e-5)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (1e-4)")
    parser.add_argument(
        "--fail_on_mismatch",
        action="store_true",
        help="exit 3 when the verdict is fail, changed or inconclusive",
    )
    parser.add_argument(
        "--top_k_only",
        action="store_true",
        help="compare the top-k lists even where both runs wrote full score vectors",
    )
    parser.add_argument(
        "--sample_fraction",
        type=float,
        default=1.0,
        help="compare only this share of keys, chosen by a stable hash of the key (1.0: all); "
        "the summary then gives exact upper bounds on the rates over all keys",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier comparison")
    parser.add_argument("--num_shards", type=int, default=0, help="element shards (0: runner's)")
    return parser


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """The comparison's flags, validated."""

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


def _beam_flags() -> _BeamArgumentParser:
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in PipelineOptions.__subclasses__():
        if cls.__module__.startswith("apache_beam."):
            cls._add_argparse_args(parser)  # noqa: SLF001 - how Beam itself collects its flags
    return parser


def _refuse_unknown(rest: list[str], ours: argparse.ArgumentParser) -> None:
    beam_parser = _beam_flags()
    _, unknown = beam_parser.parse_known_args(rest)
    if not unknown:
        return
    flag = unknown[0].split("=", 1)[0]
    known = [s for a in ours._actions for s in a.option_strings]  # noqa: SLF001
    known += [s for a in beam_parser._actions for s in a.option_strings]  # noqa: SLF001
    close = difflib.get_close_matches(flag.replace("-", "_"), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise UsageError(f"unknown argument {flag!r}{hint}")


def parse_args(argv: list[str]) -> tuple[CompareConfig, list[str]]:
    """Our flags as a CompareConfig, and the rest (Beam's flags) for PipelineOptions.

    Raises:
      UsageError: a missing or impossible value, or a flag neither we nor Beam know.
    """
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    _refuse_unknown(rest, parser)
    for name in ("baseline", "candidate", "output"):
        if not getattr(args, name):
            raise UsageError(f"no {name}: pass --{name} DIRECTORY")
    if args.atol < 0 or args.rtol < 0:
        raise UsageError("--atol and --rtol must be non-negative")
    if not 0.0 < args.sample_fraction <= 1.0:
        raise UsageError(f"--sample_fraction {args.sample_fraction}: must be in (0, 1]")
    if args.num_shards < 0:
        raise UsageError("--num_shards must be >= 0")
    config = CompareConfig(
        baseline=args.baseline.rstrip("/"),
        candidate=args.candidate.rstrip("/"),
        output=check_output_path(args.output),
        atol=args.atol,
        rtol=args.rtol,
        fail_on_mismatch=args.fail_on_mismatch,
        top_k_only=args.top_k_only,
        sample_fraction=args.sample_fraction,
        overwrite=args.overwrite,
        num_shards=args.num_shards,
    )
    return config, rest


def _run_json(run_dir: str) -> dict | None:
    path = posixpath.join(run_dir, "run.json")
    return outputs.read_json(path) if FileSystems.exists(path) else None


def preflight(config: CompareConfig, runner: str | None) -> dict:
    """Checks both runs and the output before any work; returns what the job needs.

    Raises:
      UsageError: a path holding no run, mixed formats, different class counts, a local path
        on a distributed runner, or an output that may not be written.
    """
    from pipeline.run import LOCAL_RUNNERS

    if runner not in LOCAL_RUNNERS and not (runner or "").endswith("DirectRunner"):
        for flag in ("baseline", "candidate", "output"):
            if is_local(getattr(config, flag)):
                raise UsageError(
                    f"--{flag} {getattr(config, flag)!r} is a local path, which {runner} "
                    "workers cannot read; copy it to shared storage (gs://...) and pass that"
                )
    facts = {}
    for side in ("baseline", "candidate"):
        path = getattr(config, side)
        try:
            facts[f"{side}_format"] = run_format(path)
            facts[f"{side}_first"] = first_record(path)
        except RunReadError as e:
            raise UsageError(f"--{side} {e}") from None
        facts[f"{side}_run"] = _run_json(path)
    first_b, first_c = facts["baseline_first"], facts["candidate_first"]
    if first_b and first_c and first_b.get("scores") and first_c.get("scores"):
        nb, nc = len(first_b["scores"]), len(first_c["scores"])
        if nb != nc:
            raise UsageError(
                f"the runs score different class counts ({nb} in --baseline, {nc} in "
                "--candidate): their scores cannot be compared class by class"
            )
    outputs.check_output(config.output, config.overwrite, previous_comparison)
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
    runs = {
        side: pipeline
        | f"ReadPredictions[{side}]"
        >> ReadPredictions(getattr(config, side), facts[f"{side}_format"])
        for side in ("baseline", "candidate")
    }
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
        changes=run_diff.run_changes(baseline_run, candidate_run),
        runs_known=baseline_run is not None and candidate_run is not None,
        context=context,
    )
    compared | "WriteComparison" >> WriteComparison(config.output, config.num_shards)


def run(argv=None, save_main_session=True):
    """Runs the comparison; returns the PipelineResult (waits for it to finish).

    Raises:
      UsageError: bad arguments or unusable runs/output (nothing written).
    """
    config, beam_argv = parse_args(list(sys.argv[1:] if argv is None else argv))
    options = PipelineOptions(beam_argv)
    options.view_as(SetupOptions).save_main_session = save_main_session
    facts = preflight(config, options.view_as(StandardOptions).runner)
    if config.overwrite and previous_comparison(config.output) is not None:
        doomed = comparison_files(config.output)
        if doomed:
            FileSystems.delete(doomed)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config, facts)
    result = pipeline.run()
    result.wait_until_finish()
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
    for change in summary["changes"][:10]:
        print(f"  changed {change['what']}: {change['baseline']} -> {change['candidate']}")
    print(f"report: {posixpath.join(config.output, 'report.html')}")
    return 3 if config.fail_on_mismatch and summary["verdict"] in FAILING_VERDICTS else 0


def main(argv=None) -> int:
    cli.configure_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        run(argv)
        config, _ = parse_args(argv)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return _print_summary(config)


if __name__ == "__main__":
    sys.exit(main())
