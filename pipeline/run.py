"""The scoring job: ``python -m pipeline.run`` (installed as ``batch-score``).

``run_job`` checks the command line's paths (``pipeline.preflight``), resolves the model once,
builds the job (``pipeline.graph``), runs it and writes the run record (``pipeline.run_record``);
``main`` then prints the summary (``pipeline.run_summary``) and returns the exit status.

Bad arguments and unusable inputs stop here, before any work, with exit status 2 and one line.
After the run, ``run.json`` records the accounting (every matched input is a prediction or an
error), the options, the model digest, package versions, the environment and throughput. Its
counts are the job's own (``counts.json``, counted from the data), never the runner's metrics.
"""

from __future__ import annotations

import sys

from pipeline import cli, quiet
from pipeline.job_flags import RUN

if __name__ == "__main__":
    # --help answers, and a bad command line is refused, from the flag tables (pipeline.cli)
    # before Beam and TensorFlow are imported below.
    cli.exit_on_help(RUN, sys.argv[1:])
    cli.exit_on_early_refusal(RUN, sys.argv[1:], "batch-score")
quiet.import_tensorflow_quietly()

import contextlib
import posixpath
import time
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    SetupOptions,
    TestOptions,
)

from pipeline import disk_full, failure, outputs, preflight, runners, scoring_preflight
from pipeline.flags import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from pipeline.graph import build_pipeline, job_model_config
from pipeline.interrupts import Interrupted, interruptible
from pipeline.job_config import JobConfig
from pipeline.options import parse_args
from pipeline.run_record import (
    incomplete_record,
    report_run_info,
    run_record,
    runner_model_loads,
)
from pipeline.run_summary import print_run_summary
from transforms import captured_stderr
from transforms.core.inspect_model import MODEL_CALL_FAILED
from transforms.core.model_facts import ModelFacts
from transforms.core.model_reading import make_deterministic
from transforms.score.progress import show_progress
from transforms.score.run_counts import read_counts


def run(argv=None, save_main_session=True):
    """Runs the job; returns the PipelineResult (waits for it to finish).

    ``OUTPUT/run.json`` says ``"status": "incomplete"`` from before the first output is
    written until the complete record replaces it at the end.

    Raises:
      UsageError: bad arguments or unusable model/input/output (nothing written).
      Interrupted: SIGINT or SIGTERM; the outputs are incomplete (and run.json says so).
    """
    options, config = parse_args(sys.argv[1:] if argv is None else argv)
    return run_job(options, config, save_main_session)


def run_job(options: PipelineOptions, config: JobConfig, save_main_session=True, stream=None):
    """Runs the job of already parsed options (``pipeline.options.parse_args``).

    Args:
      stream: where a local run draws its progress line, if it is a terminal (default stderr).

    Raises:
      UsageError, Interrupted: as ``run``.
    """
    start, started = time.time(), time.monotonic()
    with interruptible(config.output), contextlib.ExitStack() as owned:
        preflight.check_scoring_paths_reach_workers(config, options)
        if config.deterministic:
            # Before preflight's load: this process loads the model as every worker does.
            make_deterministic()
        runner = runners.runner_name(options)
        if runners.workers_read_local_paths(options) and options.view_as(GoogleCloudOptions).labels:
            # A user's labels.txt given as --labels would otherwise vanish without a word.
            print(
                "note: --labels is Beam's Dataflow job-labels flag (key=value), which "
                f"{runner or 'DirectRunner'} ignores; a plain model's class names go in "
                "--labels_file FILE (one label a line)",
                file=sys.stderr,
            )
        # A dry run (job construction only, e.g. for Dataflow) must not touch files or gs://.
        dry_run = options.view_as(TestOptions).dry_run
        checked = None if dry_run else scoring_preflight.check_scoring_job(config)
        options.view_as(SetupOptions).save_main_session = save_main_session
        run_id = uuid.uuid4().hex
        run_json = posixpath.join(config.output, outputs.RUN_JSON)
        if not dry_run:
            # Exclusive until the complete run.json is written: a second job is refused.
            owned.enter_context(outputs.hold_output(config.output))
            outputs.prepare_output(
                config.output, config.overwrite, incomplete_record(config, checked.facts.digest)
            )
            before = outputs.our_files(config.output)
            if checked.facts.kind != "bundle" and config.normalization is None:
                # Said out loud (once every check has passed): a plain model that expected other
                # pixels would otherwise score garbage quietly.
                spec = checked.facts.spec
                print(
                    f"note: {config.model} is a plain model (not a bundle): preprocessing "
                    f"--normalization {spec.normalization} (the default) at {spec.image_size[0]}x"
                    f"{spec.image_size[1]}; pass --normalization to change it",
                    file=sys.stderr,
                )
            if config.output_key:
                print(
                    f"note: scoring output {config.output_key!r} of {config.model} (--output_key)",
                    file=sys.stderr,
                )
            for warning in checked.facts.warnings:
                if warning["kind"] == MODEL_CALL_FAILED:
                    print(f"warning: {config.model}: {warning['message']}", file=sys.stderr)
        # Only an in-process runner reports to this process; a portable or distributed job's
        # counts are in its runner's UI.
        stream = sys.stderr if stream is None else stream
        local = not dry_run and runners.is_in_process(options)
        with show_progress(stream, started, enabled=local) as progress:
            pipeline = beam.Pipeline(runner=runners.in_process_runner(options), options=options)
            # A dry run builds the job around placeholder facts: it must not read the model.
            facts = checked.facts if checked else ModelFacts.placeholder()
            model_config = checked.model_config if checked else job_model_config(config)
            run_info = report_run_info(config, facts) if checked else None
            build_pipeline(pipeline, config, facts, model_config, progress, run_id)
            if local:
                result = pipeline.run()
            else:
                # Staging runs child processes that write to stderr (Beam tries `python -m
                # build` before `setup.py sdist`: "No module named build"); kept for
                # --log_level debug, and shown if staging fails.
                with captured_stderr(replay=config.log_level == "debug"):
                    result = pipeline.run()
            result.wait_until_finish()
        if not dry_run:
            counts = read_counts(config.output, run_id)
            if config.reconcile_fraction > 0:
                # Imported here: workers load this module's session and must not need matplotlib.
                from transforms.report.publish import write_report

                write_report(posixpath.join(config.output, "reconciliation"), run_info, counts)
            written = outputs.written_files(config.output, before)
            record = run_record(
                config,
                options,
                checked.facts,
                counts,
                time.time() - start,
                written,
                runner_model_loads(result),
                checked.skip_existing_notes,
            )
            # Without counts there is nothing to judge the run by: it is "not accounted".
            record["failure"] = (
                failure.of_run(record, config.output, config.input_format, config.max_error_rate)
                if counts is not None
                else None
            )
            outputs.write_json(run_json, record)
    return result


def main(argv=None) -> int:
    """The command line: runs the job and prints its summary; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if cli.wants_help(argv):
        cli.parser_for(RUN).print_help()
        return EXIT_OK
    quiet.configure_logging()
    try:
        options, config = parse_args(argv)
        quiet.configure_logging(config.log_level)
        with disk_full.quiet_when_disk_full():
            result = run_job(options, config)
    except UsageError as e:
        print(f"batch-score: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:
        print(f"batch-score: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if not disk_full.is_disk_full(e):
            raise
        return disk_full.report(
            "batch-score",
            config.output,
            "the run is incomplete (run.json says so): free space, then rerun with --overwrite",
        )
    except KeyboardInterrupt:
        # Before the job started (while parsing or importing): nothing was written yet.
        print("batch-score: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result is None or options.view_as(TestOptions).dry_run:
        print("dry run: the job was built and validated; nothing was run")
        return EXIT_OK
    return print_run_summary(config)


if __name__ == "__main__":
    sys.exit(disk_full.exit_status("batch-score", main))
