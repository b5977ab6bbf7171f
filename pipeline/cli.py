"""The commands' flags, help and exit codes, without importing Beam or TensorFlow.

Every flag of every command is defined once, here: ``--help`` is answered from these tables in a
fraction of a second (Beam takes ~2 s to import, TensorFlow ~5 s), the job's ``ScoringOptions``
adds the same table to Beam's parser, and README's flag table states the same defaults.
This module also owns the quiet start: TensorFlow's import-time C++ chatter is captured and
shown only with ``--log_level debug``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import os
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from transforms import captured_stderr
from transforms.core.common import INPUT_FORMATS, NORMALIZATIONS, OUTPUT_FORMATS, RESIZE_METHODS

EXIT_OK, EXIT_USAGE, EXIT_MISMATCH, EXIT_FAILED_RUN, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
EXIT_DISK_FULL = 1
LOG_LEVELS = ("debug", "info", "warning", "error")
# --decode_reference: other decoders the sample can be scored through (docs/decoding.md).
DECODE_REFERENCES = ("pillow",)


class UsageError(ValueError):
    """A bad argument or unusable resource: exit status 2, one line, nothing written."""


def default_data_dir() -> str:
    """Where the demo bundle and sample images live: ``data/`` of the checkout this package runs
    from (whatever the working directory), or, for an installed package, a per-user cache."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "setup.py").is_file():
        return str(checkout / "data")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "batch-score")


def default_model() -> str:
    """The model the job scores with when ``--model`` is not given: the demo bundle."""
    return os.path.join(default_data_dir(), "demo_bundle")


@dataclasses.dataclass(frozen=True)
class Flag:
    """One command-line flag: its argparse settings, one line of meaning and its default.

    Attributes:
      name: the flag, e.g. ``--batch_size``.
      meaning: one line for --help and README.
      default: the parsed value when the flag is absent.
      shown_default: how --help states the default when the value itself would not say it.
      argparse: further ``add_argument`` keywords (type, action, nargs, metavar, choices).
    """

    name: str
    meaning: str
    default: Any = None
    shown_default: str | None = None
    argparse: dict = dataclasses.field(default_factory=dict)

    @property
    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.argparse.get("required"):
            return "required"
        if self.argparse.get("action") == "store_true":
            return "off"
        if self.default in (None, [], ""):
            return "none"
        if isinstance(self.default, int) and not isinstance(self.default, bool):
            return f"{self.default:,}" if self.default >= 10_000 else str(self.default)
        return str(self.default)

    def add_to(self, parser) -> None:
        # ``required`` is checked by check_required, after unknown flags: a misspelt required
        # flag is then named as such, not reported missing.
        settings = {k: v for k, v in self.argparse.items() if k != "required"}
        parser.add_argument(
            self.name,
            default=self.default,
            help=f"{self.meaning} (default: {self.default_text})".replace("%", "%%"),
            **settings,
        )


def _choices(values: Iterable[str]) -> str:
    return "|".join(values)


# Flags the scoring job and the comparison share: the same tolerance, the same quiet start.
ATOL = Flag("--atol", "absolute tolerance of within_tolerance", 1e-5, argparse={"type": float})
RTOL = Flag("--rtol", "relative tolerance of within_tolerance", 1e-4, argparse={"type": float})
LOG_LEVEL = Flag(
    "--log_level",
    "debug also shows TensorFlow's and Beam's start-up notes",
    "warning",
    argparse={"metavar": _choices(LOG_LEVELS)},
)
WORKERS_SHARE_FILESYSTEM = Flag(
    "--workers_share_filesystem",
    "the runner's workers mount this machine's local paths at the same places (an NFS mount "
    "on a cluster): accept local paths on a runner whose workers run elsewhere",
    False,
    argparse={"action": "store_true"},
)

# The job's limit on one file; the shard tool and predict_one read files under the same one.
MAX_FILE_BYTES = Flag(
    "--max_file_bytes",
    "larger files are not read (the job: errors, file_too_large; the tools: refused)",
    268_435_456,
    shown_default="268,435,456 (256 MiB)",
    argparse={"type": int},
)

# The scoring job's flags, in the groups --help shows. JobConfig's fields carry the same names.
JOB_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "inputs",
        (
            Flag(
                "--input",
                "file pattern of inputs, local or gs://; repeatable",
                [],
                argparse={"action": "append", "metavar": "PATTERN"},
            ),
            Flag(
                "--input_manifest",
                "a text file of input URIs, one a line (instead of or besides --input)",
                argparse={"metavar": "FILE"},
            ),
            Flag(
                "--input_format",
                "files: each URI is one encoded image; tfrecord: tf.Example records; "
                "parquet: rows with an image column",
                "files",
                argparse={"metavar": _choices(INPUT_FORMATS)},
            ),
            Flag(
                "--image_feature",
                "tfrecord: the bytes feature holding the encoded image",
                shown_default="image/encoded",
            ),
            Flag(
                "--key_feature",
                "tfrecord: the feature holding the key",
                shown_default="image/filename, else image/id, else URI#record-index",
            ),
            Flag(
                "--image_column",
                "parquet: the binary column, or struct with bytes and path, holding the image",
                shown_default="image",
            ),
            Flag(
                "--key_column",
                "parquet: the key column",
                shown_default="the struct's path, else id, else URI#row-index",
            ),
            Flag(
                "--skip_existing",
                "an earlier output: keys with a prediction there from the same model are not "
                "scored again and count as skipped; repeatable",
                [],
                argparse={"action": "append", "metavar": "OUTPUT"},
            ),
            MAX_FILE_BYTES,
            Flag(
                "--max_image_pixels",
                "images whose header declares more pixels are refused before decoding "
                "(too_many_pixels)",
                50_000_000,
                argparse={"type": int},
            ),
            Flag(
                "--max_error_rate",
                "fail the run (exit status 4) when errors / matched is over this share, in [0, 1]",
                argparse={"type": float, "metavar": "R"},
            ),
        ),
    ),
    (
        "model and preprocessing",
        (
            Flag(
                "--model",
                "a model bundle directory, a TF2 SavedModel directory or a Keras .keras file",
                shown_default="the demo bundle, built by python -m pipeline.demo",
                argparse={"metavar": "PATH"},
            ),
            Flag(
                "--output_key",
                "SavedModels: the serving signature output to score, required when it has several",
                shown_default="its only output",
                argparse={"metavar": "NAME"},
            ),
            Flag(
                "--image_size",
                "plain models only: resize images to H x W",
                shown_default="the model's input shape",
                argparse={"type": int, "nargs": 2, "metavar": ("H", "W")},
            ),
            Flag(
                "--normalization",
                f"plain models only ({_choices(NORMALIZATIONS)}); a bundle carries its own",
                shown_default="symmetric, x/127.5-1 (none for a model that takes integer pixels)",
                argparse={"metavar": "NAME"},
            ),
            Flag(
                "--labels_file",
                "plain models only: the class names, one label a line, in class order",
                shown_default="none (a bundle carries its own)",
                argparse={"metavar": "FILE"},
            ),
            Flag(
                "--deterministic",
                "TensorFlow op determinism and fixed seeds, on every worker",
                False,
                argparse={"action": "store_true"},
            ),
            Flag(
                "--model_copies",
                "load N copies of the model per worker, shared by all its SDK processes (Beam "
                "RunInference's model_copies): 1 for a GPU or a model of several GB",
                shown_default="one per SDK process",
                argparse={"type": int, "metavar": "N"},
            ),
        ),
    ),
    (
        "batching",
        (
            Flag(
                "--batch_size",
                "rows per model call, honoured exactly on every runner; only the last batch and "
                "one a bad file shortened are smaller",
                32,
                argparse={"type": int},
            ),
            Flag(
                "--pad_batches",
                "zero-pad partial batches to --batch_size (one shape) and drop the padded rows",
                False,
                argparse={"action": "store_true"},
            ),
        ),
    ),
    (
        "reconciliation",
        (
            Flag(
                "--reconcile_fraction",
                "share of elements rescored alone, in [0, 1]; 0 turns reconciliation off",
                0.01,
                argparse={"type": float},
            ),
            Flag(
                "--reconcile_min",
                "compare at least this many elements when the job has them: the share is "
                "max(fraction, min(1, reconcile_min / (matched - skipped)))",
                300,
                argparse={"type": int},
            ),
            Flag(
                "--serving_model",
                "a bundle (often the one deployed online): also score the sample from raw bytes "
                "through its serving_default signature",
                argparse={"metavar": "BUNDLE"},
            ),
            Flag(
                "--decode_reference",
                "pillow: also score the sample decoded by Pillow (EXIF orientation applied), then "
                "the same resize and normalisation: the online service written with Pillow",
                argparse={"choices": DECODE_REFERENCES},
            ),
            Flag(
                "--sweep_batch_sizes",
                "e.g. 1,8,64: score the sample at these batch sizes too",
                "",
            ),
            ATOL,
            RTOL,
            Flag(
                "--fail_on_mismatch",
                "exit status 3 when the verdict is fail or inconclusive",
                False,
                argparse={"action": "store_true"},
            ),
        ),
    ),
    (
        "outputs",
        (
            Flag("--output", "the output directory, local or gs://", argparse={"metavar": "DIR"}),
            Flag(
                "--output_format",
                "format of the predictions (tfrecord: tfx-bsl PredictionLog)",
                "jsonl",
                argparse={"metavar": _choices(OUTPUT_FORMATS)},
            ),
            Flag("--top_k", "labels kept per prediction", 5, argparse={"type": int}),
            Flag(
                "--write_scores",
                "also write the full score vector",
                False,
                argparse={"action": "store_true"},
            ),
            Flag(
                "--num_shards",
                "output shards; 0 lets the runner choose",
                0,
                argparse={"type": int},
            ),
            Flag(
                "--overwrite",
                "replace a previous run of this job in --output (only the files it wrote)",
                False,
                argparse={"action": "store_true"},
            ),
            WORKERS_SHARE_FILESYSTEM,
            LOG_LEVEL,
        ),
    ),
)

BEAM_FLAGS_EPILOG = """\
Beam's own flags pass through to the runner, for example:
  --runner DirectRunner|PrismRunner|FlinkRunner|PortableRunner|DataflowRunner
                                           where the job runs; without it: DirectRunner, in
                                           this process (docs/runners.md)
  --direct_num_workers N --direct_running_mode multi_processing
  Dataflow: --project PROJECT --region REGION --temp_location gs://BUCKET/tmp
            --setup_file ./setup.py (and --staging_location, --job_name, --machine_type,
            --max_num_workers, --sdk_container_image, ...)
A flag that neither this job nor Beam knows is refused.
"""

RUN_EPILOG = f"""\
{BEAM_FLAGS_EPILOG}
exit status:
  0    success
  1    the run failed while writing: the output's disk is full (one line says so); the
       output is incomplete and run.json says so
  2    bad arguments (unknown or misspelled flags included) or an unusable model, input or
       output: one line says which and how to fix it; nothing is written
  3    reconciliation verdict fail or inconclusive, with --fail_on_mismatch
  4    inputs were matched and nothing was scored, or errors / matched is over
       --max_error_rate: outputs are complete, run.json's failure says why
  130  interrupted (Ctrl-C); the output is not marked complete
"""

EXPORT_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "export",
        (
            Flag("--model", "the Keras .keras file to export", argparse={"required": True}),
            Flag(
                "--output",
                "the bundle directory to write, local or any Beam filesystem (gs://)",
                argparse={"required": True},
            ),
            Flag("--labels", "a text file with one label a line, in class order"),
            Flag(
                "--image_size",
                "resize images to H x W",
                shown_default="the model's input shape",
                argparse={"type": int, "nargs": 2, "metavar": ("H", "W")},
            ),
            Flag(
                "--normalization",
                "pixel normalisation",
                shown_default="symmetric, or none for a model that takes integer pixels",
                argparse={"choices": NORMALIZATIONS},
            ),
            Flag(
                "--resize_method", "resize method", "bilinear", argparse={"choices": RESIZE_METHODS}
            ),
        ),
    ),
)

PREDICT_ONE_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "predict_one",
        (
            Flag(
                "--model",
                "the model bundle, as deployed online",
                argparse={"required": True},
            ),
            Flag("--against", "a batch job's output directory to compare with"),
            Flag("--top_k", "labels shown", 5, argparse={"type": int}),
            MAX_FILE_BYTES,
            Flag(
                "--layers",
                "with --against: the layer profile of the image in its batch (the run's "
                "members and position) against the image alone; --model may then be any model",
                False,
                argparse={"action": "store_true"},
            ),
        ),
    ),
)

DEMO_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "demo",
        (
            Flag(
                "--data_dir",
                "where demo_bundle/ and sample/ are built (only what is missing)",
                shown_default="data/ of this checkout, or ~/.cache/batch-score when installed",
            ),
        ),
    ),
)

COMPARE_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "runs",
        (
            Flag(
                "--baseline",
                "the reference run: a scoring job's --output, in any output format, local or gs://",
                argparse={"required": True, "metavar": "RUN"},
            ),
            Flag(
                "--candidate",
                "the run compared with it, key by key",
                argparse={"required": True, "metavar": "RUN"},
            ),
        ),
    ),
    (
        "comparison",
        (
            ATOL,
            RTOL,
            Flag(
                "--top_k_only",
                "compare the top-k lists even where both runs wrote full score vectors",
                False,
                argparse={"action": "store_true"},
            ),
            Flag(
                "--sample_fraction",
                "compare only this share of keys, chosen by a stable hash of the key, in (0, 1]; "
                "the summary then bounds the rates over all keys",
                1.0,
                shown_default="1.0, every key",
                argparse={"type": float},
            ),
            Flag(
                "--fail_on_mismatch",
                "exit status 3 when the verdict is fail, changed or inconclusive",
                False,
                argparse={"action": "store_true"},
            ),
        ),
    ),
    (
        "outputs",
        (
            Flag(
                "--output",
                "directory for summary.json, elements/ and report.html, local or gs://",
                argparse={"required": True, "metavar": "DIR"},
            ),
            Flag(
                "--num_shards",
                "shards of elements/; 0 lets the runner choose",
                0,
                argparse={"type": int},
            ),
            Flag(
                "--overwrite",
                "replace an earlier comparison in --output (only its summary.json, report.html "
                "and elements/ shards)",
                False,
                argparse={"action": "store_true"},
            ),
            WORKERS_SHARE_FILESYSTEM,
            LOG_LEVEL,
        ),
    ),
)

COMPARE_EPILOG = f"""\
{BEAM_FLAGS_EPILOG}
exit status:
  0    the comparison was written, whatever its verdict (unless --fail_on_mismatch)
  2    bad arguments (unknown or misspelled flags included), a path that holds no run, runs
       that mix formats or score different class counts, or an output that may not be
       written: one line says which; nothing is written
  3    verdict fail, changed or inconclusive, with --fail_on_mismatch
  130  interrupted (Ctrl-C); the comparison in --output is incomplete
"""

# Shards are the job's input formats other than plain files.
SHARD_FORMATS = tuple(fmt for fmt in INPUT_FORMATS if fmt != "files")
SHARD_COMPRESSIONS = ("none", "gzip")
SHARD_KEYS = ("uri", "relative")

SHARD_FLAGS: tuple[tuple[str, tuple[Flag, ...]], ...] = (
    (
        "inputs",
        (
            Flag(
                "--input",
                "file pattern of images, local or gs://; repeatable",
                argparse={"action": "append", "required": True, "metavar": "PATTERN"},
            ),
            Flag(
                "--keys",
                "the key stored per image: uri (its full URI, as a files run keys it) or "
                "relative (its path below the inputs' common folder)",
                "uri",
                argparse={"choices": SHARD_KEYS},
            ),
            MAX_FILE_BYTES,
        ),
    ),
    (
        "shards",
        (
            Flag(
                "--output",
                "a new or empty directory, local or gs://",
                argparse={"required": True, "metavar": "DIR"},
            ),
            Flag(
                "--format",
                "tfrecord: tf.Example records; parquet: one struct column image {bytes, path}",
                argparse={"required": True, "choices": SHARD_FORMATS},
            ),
            Flag("--records_per_shard", "images per shard", 1000, argparse={"type": int}),
            Flag(
                "--compression",
                "tfrecord: gzip the shard (.tfrecord.gz); parquet: the column codec",
                "none",
                argparse={"choices": SHARD_COMPRESSIONS},
            ),
        ),
    ),
)

SHARD_EPILOG = """\
exit status: 0 success; 2 bad arguments (unknown or misspelled flags included), a pattern that
matches nothing, a file that cannot be read or an output that is not empty (one line says
which); 130 interrupted.
"""

SHORT_EPILOG = """\
exit status: 0 success; 2 bad arguments or an unusable model, input or output (one line says
which; nothing is written); 130 interrupted.
"""
PREDICT_ONE_EPILOG = """\
exit status: 0 success; 1 the serving signature failed on the image, or the --against output
holds no prediction for it; 2 bad arguments or an unusable model or image (one line says
which); 130 interrupted.
"""


@dataclasses.dataclass(frozen=True)
class Command:
    """A command line: its name, one-line description, flags and closing text."""

    prog: str
    description: str
    flags: tuple[tuple[str, tuple[Flag, ...]], ...]
    epilog: str = SHORT_EPILOG
    positional: tuple[tuple[str, str], ...] = ()  # (name, meaning)
    usage: str = "[flags]"


RUN = Command(
    "python -m pipeline.run",
    "Scores images with a model on Apache Beam and checks, on a sample, that each batched score "
    "equals the same image scored alone (also installed as batch-score).",
    JOB_FLAGS,
    RUN_EPILOG,
    usage="--input PATTERN --output DIR [--model PATH] [flags] [Beam's flags]",
)
EXPORT = Command(
    "python -m pipeline.export",
    "Exports a Keras model as a model bundle: a SavedModel with the shared preprocessing inside.",
    EXPORT_FLAGS,
    usage="--model M.keras --output BUNDLE [flags]",
)
PREDICT_ONE = Command(
    "python -m pipeline.predict_one",
    "Scores one image exactly as the online path does (serving_default via tfx-bsl), "
    "optionally beside its prediction in a batch job's output.",
    PREDICT_ONE_FLAGS,
    PREDICT_ONE_EPILOG,
    positional=(("image", "an image path or URI (local or gs://)"),),
    usage="IMAGE --model BUNDLE [--against OUTPUT] [flags]",
)
DEMO = Command(
    "python -m pipeline.demo",
    "Builds the embedded default: a small digit classifier (model bundle) and labelled sample "
    "images, trained locally from scikit-learn's digits; nothing is downloaded.",
    DEMO_FLAGS,
)
COMPARE = Command(
    "python -m pipeline.compare",
    "Compares two runs' predictions key by key on Apache Beam: coverage, tolerance statuses, "
    "top-1 flips, drift, and what changed between the runs (also installed as batch-compare).",
    COMPARE_FLAGS,
    COMPARE_EPILOG,
    usage="--baseline RUN --candidate RUN --output DIR [flags] [Beam's flags]",
)
SHARD = Command(
    "python -m pipeline.shard",
    "Packs image files into TFRecord or Parquet shards for the job's --input_format: each "
    "image's bytes as read, with its key.",
    SHARD_FLAGS,
    SHARD_EPILOG,
    usage="--input PATTERN --output DIR --format tfrecord|parquet [flags]",
)


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


# What TensorFlow wrote to stderr while it was imported (see import_tensorflow_quietly).
_startup_noise: list[str] = []


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its import-time chatter captured, for ``--log_level debug``.

    At import, TensorFlow's C++ code writes "All log messages before absl::InitializeLog()",
    "Could not find cuda drivers" and oneDNN notes straight to fd 2, before it reads
    TF_CPP_MIN_LOG_LEVEL, so neither that variable nor Python's logging can hold them back.
    """
    if "tensorflow" in sys.modules:
        return
    with captured_stderr() as text:
        import tensorflow  # noqa: F401
    _startup_noise.extend(text)


# Log messages that say nothing about the job, kept for --log_level debug:
_NOISE = (
    # Beam 2.77 at every model load: it cannot measure memory (its ModelManager needs torch).
    "Resource module is not available",
    # Multi-process workers parse the options the launcher sends, which include flags only the
    # launcher registered (ours, and some of the DirectRunner's): not lost, never needed there.
    "Discarding unparseable args",
    # Multi-process workers on a local machine have no staging directory; nothing is staged.
    "No semi_persistent_directory found",
    # Beam's subprocess server starting and stopping a runner (Prism, Flink's job server), as
    # warnings, at every run on it.
    "Really starting service at",
    "Really destroying service at",
)


def _not_noise(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(text in message for text in _NOISE)


def configure_logging(level: str = "warning") -> None:
    """Sets what reaches the terminal: ``warning`` (the default) keeps warnings and errors but
    not Beam's and TensorFlow's start-up notes (Beam's Prism download attempt offline, TF
    deprecation notes); ``debug`` shows everything, including TensorFlow's import chatter."""
    numeric = getattr(logging, level.upper())
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(numeric)
    logging.getLogger("apache_beam").setLevel(numeric)
    logging.getLogger("tensorflow").setLevel(numeric if numeric <= logging.DEBUG else logging.ERROR)
    # On the handlers: a logger's own filters do not see records propagated from its children.
    for handler in root.handlers:
        if numeric <= logging.DEBUG:
            handler.removeFilter(_not_noise)
        elif _not_noise not in handler.filters:
            handler.addFilter(_not_noise)
    if numeric <= logging.DEBUG:
        for text in _startup_noise:
            sys.stderr.write(text)
        _startup_noise.clear()


def output_not_empty(output: str) -> UsageError:
    return UsageError(
        f"--output {output!r} is not empty; pass --overwrite to replace a previous run's "
        "outputs there, or choose a new directory"
    )


def refuse_early(command: Command, argv: Sequence[str]) -> None:
    """Refuses what a command line gets wrong before Beam (seconds to import) and TensorFlow
    (more) are imported: an unknown or misspelt flag (ours, or not one of Beam's, from the
    ``pipeline.beam_flags`` snapshot), a missing required flag; for the scoring job also no
    input, no output and a local output that is not empty without --overwrite, then (importing
    Beam, not TensorFlow) every value check of JobConfig. The full parse that follows refuses
    the same with the same words.

    Raises:
      UsageError: the one line of the refusal.
    """
    from pipeline.beam_flags import BEAM_FLAGS

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
    # The value checks: JobConfig's own (pipeline.options imports Beam, not TensorFlow).
    from pipeline.options import JobConfig

    JobConfig.from_options(args)


def exit_on_early_refusal(command: Command, argv: Sequence[str], name: str) -> None:
    """``refuse_early``'s one line (``name: error: ...``, as the command's own refusals read)
    and exit status 2, before anything heavy is imported."""
    try:
        refuse_early(command, argv)
    except UsageError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def batch_score(argv: Sequence[str] | None = None) -> int:
    """The ``batch-score`` console script: answers --help and refuses a bad command line before
    importing the job."""
    argv = sys.argv[1:] if argv is None else list(argv)
    exit_on_help(RUN, argv)
    exit_on_early_refusal(RUN, argv, "batch-score")
    from pipeline.run import main

    return main(argv)


def batch_compare(argv: Sequence[str] | None = None) -> int:
    """The ``batch-compare`` console script: answers --help and refuses a bad command line
    before importing the comparison."""
    argv = sys.argv[1:] if argv is None else list(argv)
    exit_on_help(COMPARE, argv)
    exit_on_early_refusal(COMPARE, argv, "batch-compare")
    from pipeline.compare import main

    return main(argv)
