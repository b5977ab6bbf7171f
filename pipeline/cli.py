"""The argparse layer of every command: parsing, ``--help`` and the early refusals, without
importing Beam or TensorFlow.

The flags are data (``pipeline.flags``, ``pipeline.job_flags``, ``pipeline.tool_flags``); this
module turns them into parsers. ``--help`` and a bad command line are answered from them before
the command imports anything heavy: a refusal is one line and exit status 2, with the closest
flag named for a misspelt one.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import textwrap
from collections.abc import Iterable, Sequence

from pipeline.beam_flags import BEAM_FLAGS
from pipeline.flags import EXIT_OK, EXIT_USAGE, Command, UsageError
from pipeline.job_config import JobConfig
from pipeline.job_flags import COMPARE, RUN


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line UsageErrors instead of usage text and an exit."""

    def error(self, message):
        raise UsageError(message)


def flag_names(command: Command) -> list[str]:
    return [flag.name for _, flags in command.flags for flag in flags]


def add_flags(parser, command: Command, grouped: bool = False) -> None:
    """Adds ``command``'s flags to ``parser`` (argparse or Beam's), in titled groups if asked."""
    for title, flags in command.flags:
        target = parser.add_argument_group(title) if grouped else parser
        for flag in flags:
            flag.add_to(target)


def parser_for(command: Command) -> argparse.ArgumentParser:
    """The full parser of ``command``, as --help shows it."""
    parser = _Parser(
        prog=command.prog,
        usage=f"%(prog)s {command.usage}",
        description=textwrap.fill(command.description, 96),
        epilog=command.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    for name, meaning in command.positional:
        parser.add_argument(name, help=meaning)
    add_flags(parser, command, grouped=True)
    return parser


def wants_help(argv: Sequence[str]) -> bool:
    return any(arg in ("-h", "--help") for arg in argv)


def exit_on_help(command: Command, argv: Sequence[str]) -> None:
    """Prints ``command``'s help and exits 0 when asked, before anything heavy is imported."""
    if wants_help(argv):
        parser_for(command).print_help()
        sys.exit(EXIT_OK)


def closest_flag(argument: str, *known: Iterable[str]) -> str | None:
    """The known flag ``argument`` most likely meant (``--batch-size`` -> ``--batch_size``):
    the same name with ``_`` for ``-`` in any of ``known``, else the closest spelling, searching
    the lists of ``known`` in order (a command's own flags before Beam's)."""
    name = "--" + argument.split("=", 1)[0].lstrip("-").replace("-", "_")
    lists = [list(names) for names in known]
    for names in lists:
        if name in names:
            return name
    for names in lists:
        matches = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if matches:
            return matches[0]
    return None


def unknown_argument(argument: str, *known: Iterable[str]) -> UsageError:
    """The one-line refusal of an argument no parser knows, naming the closest flag of
    ``known`` (the command's own flags first, then Beam's)."""
    if not argument.startswith("-"):
        return UsageError(f"unexpected argument {argument!r}")
    suggestion = closest_flag(argument, *known)
    if suggestion:
        return UsageError(f"unknown flag {argument}; did you mean {suggestion}?")
    return UsageError(f"unknown flag {argument}; see --help")


def check_required(command: Command, args: argparse.Namespace) -> None:
    """Refuses a command line that lacks one of ``command``'s required flags.

    Raises:
      UsageError: naming every missing flag.
    """
    missing = [
        flag.name
        for _, flags in command.flags
        for flag in flags
        if flag.argparse.get("required") and getattr(args, flag.name[2:]) in (None, [])
    ]
    if missing:
        raise UsageError(f"missing {', '.join(missing)} (required; see --help)")


def parse_known(command: Command, argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Splits a command line: ``command``'s flags, parsed, and the rest (for Beam, unchecked).

    Raises:
      UsageError: a bad value for one of ``command``'s flags.
    """
    parser = _Parser(add_help=False, allow_abbrev=False)
    for name, meaning in command.positional:
        parser.add_argument(name, help=meaning)
    add_flags(parser, command)
    return parser.parse_known_args(argv)


def parse(command: Command, argv: Sequence[str]) -> argparse.Namespace:
    """Parses a whole command line (not a Beam job's, whose rest goes to Beam).

    Raises:
      UsageError: an unknown flag (naming the closest), a bad value or a missing flag.
    """
    args, unknown = parse_known(command, argv)
    if unknown:
        raise unknown_argument(unknown[0], flag_names(command))
    check_required(command, args)
    return args


def output_not_empty(output: str) -> UsageError:
    return UsageError(
        f"--output {output!r} is not empty; pass --overwrite to replace a previous run's "
        "outputs there, or choose a new directory"
    )


def refuse_early(command: Command, argv: Sequence[str]) -> None:
    """Refuses what a command line gets wrong before Beam (seconds to import) and TensorFlow
    (more) are imported: an unknown or misspelt flag (ours, or not one of Beam's, from the
    ``pipeline.beam_flags`` snapshot), a missing required flag; for the scoring job also no
    input, no output and a local output that is not empty without --overwrite, then every value
    check of JobConfig (``pipeline.job_config``, which imports neither). The full parse that
    follows refuses the same with the same words.

    Raises:
      UsageError: the one line of the refusal.
    """
    if command not in (RUN, COMPARE):  # no Beam flags: the whole parse is cheap
        parse(command, argv)
        return
    args, rest = parse_known(command, argv)
    for argument in rest:
        # A value of one of Beam's flags (--runner DirectRunner) is Beam's to check.
        if argument.startswith("-") and argument.split("=", 1)[0] not in BEAM_FLAGS:
            raise unknown_argument(argument, flag_names(command), sorted(BEAM_FLAGS))
    check_required(command, args)
    if command is not RUN:
        return
    if not args.input and not args.input_manifest:
        raise UsageError("no input: pass --input PATTERN (repeatable) or --input_manifest FILE")
    if not args.output:
        raise UsageError("no output: pass --output DIRECTORY")
    output = args.output.rstrip("/") or "/"
    if "://" not in output and os.path.isdir(output) and not args.overwrite and os.listdir(output):
        raise output_not_empty(output)
    # The value checks: JobConfig's own.
    JobConfig.from_options(args)


def exit_on_early_refusal(command: Command, argv: Sequence[str], name: str) -> None:
    """``refuse_early``'s one line (``name: error: ...``, as the command's own refusals read)
    and exit status 2, before anything heavy is imported."""
    try:
        refuse_early(command, argv)
    except UsageError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
