"""Every command's flags as data: the ``Flag`` and ``Command`` types, the exit statuses, the
refusal that means exit status 2 and the flags several commands share.

No Beam, no TensorFlow: ``--help`` is answered from these tables in a fraction of a second (Beam
takes ~2 s to import, TensorFlow ~5 s). The commands' own tables are in ``pipeline.job_flags``
(the two Beam jobs) and ``pipeline.tool_flags`` (the tools); README's flag table states the
same defaults.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_USAGE, EXIT_MISMATCH, EXIT_FAILED_RUN, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
EXIT_DISK_FULL = 1
LOG_LEVELS = ("debug", "info", "warning", "error")


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


def choices_text(values: Iterable[str]) -> str:
    """How --help shows a flag's choices: ``a|b|c``."""
    return "|".join(values)


# Flags the scoring job and the comparison share: the same tolerance, the same quiet start.
ATOL = Flag("--atol", "absolute tolerance of within_tolerance", 1e-5, argparse={"type": float})
RTOL = Flag("--rtol", "relative tolerance of within_tolerance", 1e-4, argparse={"type": float})
LOG_LEVEL = Flag(
    "--log_level",
    "debug also shows TensorFlow's and Beam's start-up notes",
    "warning",
    argparse={"metavar": choices_text(LOG_LEVELS)},
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


SHORT_EPILOG = """\
exit status: 0 success; 2 bad arguments or an unusable model, input or output (one line says
which; nothing is written); 130 interrupted.
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
