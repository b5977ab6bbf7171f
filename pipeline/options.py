"""The Beam jobs' command lines, parsed once: Beam's own flags become the runner's
``PipelineOptions``, ours a validated config, and anything neither knows is refused.

The flags themselves (names, defaults, meanings) are data in ``pipeline.job_flags``, which
--help reads without importing Beam. ``parse_args`` parses the scoring job's command line once:
our flags become a frozen ``JobConfig`` (``pipeline.job_config``), Beam's own flags (--runner,
--direct_num_workers, Dataflow's) become the runner's ``PipelineOptions``, and a flag neither
knows is refused, naming the closest flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import cli
from pipeline.flags import Command, UsageError
from pipeline.job_config import JobConfig
from pipeline.job_flags import RUN
from transforms.io.beam_private import (
    add_beam_options_flags,
    beam_argument_parser_class,
    beam_options_classes,
)


class ScoringOptions(PipelineOptions):
    """The job's flags as Beam options (``PipelineOptions(argv).view_as(ScoringOptions)``)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        cli.add_flags(parser, RUN)


class _OneLineBeamParser(beam_argument_parser_class()):
    """Beam's own parser (it understands Beam's value-provider flags), with one-line errors,
    which keeps the names of the flags added to it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flag_names: list[str] = []

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        self.flag_names.extend(action.option_strings)
        return action

    def error(self, message):
        raise UsageError(message)


def _refuse_unknown(command: Command, beam_argv: Sequence[str]) -> None:
    """Refuses what Beam does not know, as Beam's runners would parse it (every options class
    but this package's own), instead of Beam's warning and a job without it; the refusal names
    the closest of ``command``'s flags, else of Beam's."""
    parser = _beam_parser()
    _, unknown = parser.parse_known_args(beam_argv)
    if unknown:
        raise cli.unknown_argument(unknown[0], cli.flag_names(command), parser.flag_names)


def _beam_parser() -> _OneLineBeamParser:
    parser = _OneLineBeamParser(allow_abbrev=False, add_help=False)
    for options_class in beam_options_classes():
        # ScoringOptions holds the job's flags: another command must not accept them.
        if not options_class.__module__.startswith("pipeline."):
            add_beam_options_flags(parser, options_class)
    return parser


def beam_flag_names() -> set[str]:
    """Every flag Beam's runners parse (what ``pipeline.beam_flags`` snapshots)."""
    return set(_beam_parser().flag_names)


def parse_beam_command(
    command: Command, argv: Sequence[str]
) -> tuple[PipelineOptions, argparse.Namespace]:
    """Parses the command line of a Beam job once (the scoring job, the comparison).

    Returns:
      The runner's options (Beam's flags only: workers then have no flag of ours to warn
      about) and ``command``'s own flags, parsed but not yet validated.

    Raises:
      UsageError: a flag neither ``command`` nor Beam knows (naming the closest), a bad value
        or a missing required flag.
    """
    flags, beam_argv = cli.parse_known(command, argv)
    _refuse_unknown(command, beam_argv)
    cli.check_required(command, flags)
    return PipelineOptions(beam_argv), flags


def parse_args(argv: Sequence[str]) -> tuple[PipelineOptions, JobConfig]:
    """Parses the scoring job's command line once.

    Returns:
      The runner's options and the job's flags as a validated JobConfig.

    Raises:
      UsageError: an unknown flag, a bad value, or an impossible combination.
    """
    options, flags = parse_beam_command(RUN, argv)
    return options, JobConfig.from_options(flags)
