"""The scoring job's flags, validated: the frozen ``JobConfig``, and the rules for an
``--output`` path that the comparison and the shard tool share.

``JobConfig.from_options`` refuses impossible values with one clear line before any work starts.
No Beam, no TensorFlow: the early refusals (``pipeline.cli``) run the same checks before either
is imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import posixpath

from pipeline.flags import LOG_LEVELS, UsageError, default_model
from transforms.core import shard_records
from transforms.core.common import (
    INPUT_FORMATS,
    NORMALIZATIONS,
    OUTPUT_FORMATS,
    is_local,
    local_path,
)

# Flags that only mean something with one --input_format.
_FORMAT_FLAGS = {
    "image_feature": "tfrecord",
    "key_feature": "tfrecord",
    "image_column": "parquet",
    "key_column": "parquet",
}


def resolved_location(path: str) -> str:
    """Where ``path`` points, so two spellings of one folder compare equal: a local path made
    absolute with its links resolved (``./OUT``, ``OUT/``, ``file://``), a remote one with its
    scheme lower-cased and its slashes and ``.`` parts normalised."""
    if is_local(path):
        return os.path.realpath(local_path(path) or ".")
    scheme, rest = path.split("://", 1)
    return f"{scheme.lower()}://{posixpath.normpath(rest.strip('/'))}"


def check_output_path(output: str) -> str:
    """``--output`` as a literal directory, without its trailing slash.

    Refused: glob characters (Beam's file sinks and matching would treat the path as a
    pattern, and --overwrite could reach sibling folders), and a local ``/``, the current
    directory or one of its parents (whose contents are the user's, not a run's).
    """
    if any(char in output for char in "*?["):
        raise UsageError(
            f"--output {output!r} contains a glob character (* ? [); "
            "an output is a literal directory: choose a name without them"
        )
    stripped = output.rstrip("/")
    if is_local(output) and not output.startswith("file://"):
        absolute = os.path.abspath(stripped or "/")
        cwd = os.getcwd()
        if absolute == "/" or absolute == cwd or cwd.startswith(absolute.rstrip("/") + "/"):
            raise UsageError(
                f"--output {output!r} is the filesystem root, the current directory or one of "
                "its parents; pass a directory of its own, e.g. out/run1"
            )
    elif not output.split("://", 1)[-1].strip("/"):
        raise UsageError(f"--output {output!r} names no directory; pass e.g. gs://bucket/run1")
    return stripped


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise UsageError(f"--sweep_batch_sizes {text!r}: expected integers like 1,8,64") from None
    if any(size < 1 for size in sizes):
        raise UsageError(f"--sweep_batch_sizes {text!r}: sizes must be >= 1")
    return sizes


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """Our flags, validated. Transforms receive plain values from here, never the flags."""

    inputs: tuple[str, ...]
    input_manifest: str | None
    model: str
    output: str
    batch_size: int
    pad_batches: bool
    reconcile_fraction: float
    reconcile_min: int
    serving_model: str | None
    decode_reference: str | None
    sweep_batch_sizes: tuple[int, ...]
    atol: float
    rtol: float
    fail_on_mismatch: bool
    top_k: int
    write_scores: bool
    output_format: str
    image_size: tuple[int, int] | None
    normalization: str | None
    max_image_pixels: int
    deterministic: bool
    model_copies: int | None
    overwrite: bool
    num_shards: int
    reconcile_min: int
    max_file_bytes: int
    # Shard inputs: the format, and where a record keeps its image and key.
    input_format: str
    image_feature: str
    key_features: tuple[str, ...]
    image_column: str
    key_column: str | None
    skip_existing: tuple[str, ...]
    log_level: str
    output_key: str | None = None
    max_error_rate: float | None = None
    labels_file: str | None = None
    workers_share_filesystem: bool = False

    @classmethod
    def from_options(cls, o: argparse.Namespace) -> JobConfig:
        """Validates the parsed flags (``parse_beam_command``'s namespace or a ScoringOptions
        view) and freezes them."""
        if not o.input and not o.input_manifest:
            raise UsageError("no input: pass --input PATTERN (repeatable) or --input_manifest FILE")
        if not o.output:
            raise UsageError("no output: pass --output DIRECTORY")
        if o.batch_size < 1:
            raise UsageError(f"--batch_size {o.batch_size}: must be at least 1")
        if not 0.0 <= o.reconcile_fraction <= 1.0:
            raise UsageError(f"--reconcile_fraction {o.reconcile_fraction}: must be in [0, 1]")
        if o.reconcile_min < 0:
            raise UsageError(f"--reconcile_min {o.reconcile_min}: must be >= 0")
        if o.serving_model and o.reconcile_fraction == 0:
            raise UsageError("--serving_model compares the sample: set --reconcile_fraction > 0")
        if o.decode_reference and o.reconcile_fraction == 0:
            raise UsageError("--decode_reference compares the sample: set --reconcile_fraction > 0")
        if not (math.isfinite(o.atol) and math.isfinite(o.rtol)) or o.atol < 0 or o.rtol < 0:
            raise UsageError(
                f"--atol {o.atol} --rtol {o.rtol}: both must be finite and non-negative"
            )
        if o.top_k < 1:
            raise UsageError(f"--top_k {o.top_k}: must be at least 1")
        if o.normalization is not None and o.normalization not in NORMALIZATIONS:
            raise UsageError(
                f"--normalization {o.normalization!r}: choose one of {', '.join(NORMALIZATIONS)}"
            )
        if o.output_format not in OUTPUT_FORMATS:
            raise UsageError(
                f"--output_format {o.output_format!r}: choose one of {', '.join(OUTPUT_FORMATS)}"
            )
        if o.image_size is not None and min(o.image_size) < 1:
            raise UsageError(f"--image_size {o.image_size}: sizes must be positive")
        if o.max_image_pixels < 1:
            raise UsageError("--max_image_pixels must be positive")
        if o.image_size is not None and o.image_size[0] * o.image_size[1] > o.max_image_pixels:
            raise UsageError(
                f"--image_size {o.image_size[0]} {o.image_size[1]} is over --max_image_pixels "
                f"{o.max_image_pixels:,}; every image would be resized to that many pixels"
            )
        if o.model_copies is not None and o.model_copies < 1:
            raise UsageError(f"--model_copies {o.model_copies}: must be at least 1")
        if o.max_file_bytes < 1:
            raise UsageError("--max_file_bytes must be positive")
        if o.num_shards < 0:
            raise UsageError("--num_shards must be >= 0")
        if o.log_level not in LOG_LEVELS:
            raise UsageError(f"--log_level {o.log_level!r}: choose one of {', '.join(LOG_LEVELS)}")
        if o.input_format not in INPUT_FORMATS:
            raise UsageError(
                f"--input_format {o.input_format!r}: choose one of {', '.join(INPUT_FORMATS)}"
            )
        for name, fmt in _FORMAT_FLAGS.items():
            value = getattr(o, name)
            if value is not None and o.input_format != fmt:
                raise UsageError(f"--{name} applies to --input_format {fmt} only")
            if value is not None and not value.strip():
                raise UsageError(f"--{name} must not be empty")
        if o.max_error_rate is not None and not 0.0 <= o.max_error_rate <= 1.0:
            raise UsageError(f"--max_error_rate {o.max_error_rate}: must be in [0, 1]")
        if resolved_location(o.output) in {resolved_location(run) for run in o.skip_existing}:
            raise UsageError(
                "--skip_existing names the --output itself; write the rerun into a new directory"
            )
        return cls(
            inputs=tuple(o.input),
            input_manifest=o.input_manifest,
            model=o.model or default_model(),
            output=check_output_path(o.output),
            batch_size=o.batch_size,
            pad_batches=o.pad_batches,
            reconcile_fraction=o.reconcile_fraction,
            reconcile_min=o.reconcile_min,
            serving_model=o.serving_model,
            decode_reference=o.decode_reference,
            sweep_batch_sizes=_parse_sizes(o.sweep_batch_sizes),
            atol=o.atol,
            rtol=o.rtol,
            fail_on_mismatch=o.fail_on_mismatch,
            top_k=o.top_k,
            write_scores=o.write_scores,
            output_format=o.output_format,
            image_size=tuple(o.image_size) if o.image_size else None,
            normalization=o.normalization,
            max_image_pixels=o.max_image_pixels,
            deterministic=o.deterministic,
            model_copies=o.model_copies,
            overwrite=o.overwrite,
            num_shards=o.num_shards,
            max_file_bytes=o.max_file_bytes,
            input_format=o.input_format,
            image_feature=o.image_feature or shard_records.DEFAULT_IMAGE_FEATURE,
            key_features=(o.key_feature,) if o.key_feature else shard_records.DEFAULT_KEY_FEATURES,
            image_column=o.image_column or shard_records.DEFAULT_IMAGE_COLUMN,
            key_column=o.key_column,
            skip_existing=tuple(run.rstrip("/") for run in o.skip_existing),
            log_level=o.log_level,
            output_key=o.output_key,
            max_error_rate=o.max_error_rate,
            labels_file=o.labels_file,
            workers_share_filesystem=o.workers_share_filesystem,
        )
