"""Command-line flags (a PipelineOptions subclass) and the validated job configuration.

Flags are parsed by Beam so its own flags (--runner, --direct_num_workers, Dataflow's) pass
through; ``JobConfig.from_options`` turns ours into a frozen dataclass and refuses impossible
values with one clear line before any work starts.
"""

from __future__ import annotations

import dataclasses
import os

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.preprocess import NORMALIZATIONS

OUTPUT_FORMATS = ("jsonl", "parquet", "tfrecord")
DEFAULT_MODEL = os.path.join("data", "demo_bundle")


class UsageError(ValueError):
    """A bad argument or unusable resource: exit status 2, nothing written."""


class ScoringOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--input", action="append", default=[], help="image file pattern(s)")
        parser.add_argument("--input_manifest", default=None, help="text file of image URIs")
        parser.add_argument("--model", default=DEFAULT_MODEL, help="bundle, SavedModel or .keras")
        parser.add_argument("--output", default=None, help="output directory (local or gs://)")
        parser.add_argument("--batch_size", type=int, default=32)
        parser.add_argument("--pad_batches", action="store_true")
        parser.add_argument("--reconcile_fraction", type=float, default=0.05)
        parser.add_argument("--serving_model", default=None)
        parser.add_argument("--sweep_batch_sizes", default="")
        parser.add_argument("--atol", type=float, default=1e-5)
        parser.add_argument("--rtol", type=float, default=1e-4)
        parser.add_argument("--fail_on_mismatch", action="store_true")
        parser.add_argument("--top_k", type=int, default=5)
        parser.add_argument("--write_scores", action="store_true")
        parser.add_argument("--output_format", default="jsonl")
        parser.add_argument("--image_size", type=int, nargs=2, default=None, metavar=("H", "W"))
        parser.add_argument("--normalization", default=None)
        parser.add_argument("--max_image_pixels", type=int, default=50_000_000)
        parser.add_argument("--deterministic", action="store_true")
        parser.add_argument("--overwrite", action="store_true")
        parser.add_argument(
            "--num_shards", type=int, default=0, help="output shards; 0 lets the runner choose"
        )
        parser.add_argument("--skip_existing", action="append", default=[])


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
    serving_model: str | None
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
    overwrite: bool
    num_shards: int
    skip_existing: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: PipelineOptions) -> JobConfig:
        o = options.view_as(ScoringOptions)
        if not o.input and not o.input_manifest:
            raise UsageError("no input: pass --input PATTERN (repeatable) or --input_manifest FILE")
        if not o.output:
            raise UsageError("no output: pass --output DIRECTORY")
        if o.batch_size < 1:
            raise UsageError(f"--batch_size {o.batch_size}: must be at least 1")
        if not 0.0 <= o.reconcile_fraction <= 1.0:
            raise UsageError(f"--reconcile_fraction {o.reconcile_fraction}: must be in [0, 1]")
        if o.serving_model and o.reconcile_fraction == 0:
            raise UsageError("--serving_model compares the sample: set --reconcile_fraction > 0")
        if o.atol < 0 or o.rtol < 0:
            raise UsageError("--atol and --rtol must be non-negative")
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
        if o.num_shards < 0:
            raise UsageError("--num_shards must be >= 0")
        if o.output.rstrip("/") in {run.rstrip("/") for run in o.skip_existing}:
            raise UsageError(
                "--skip_existing names the --output itself; write the rerun into a new directory"
            )
        return cls(
            inputs=tuple(o.input),
            input_manifest=o.input_manifest,
            model=o.model,
            output=o.output.rstrip("/"),
            batch_size=o.batch_size,
            pad_batches=o.pad_batches,
            reconcile_fraction=o.reconcile_fraction,
            serving_model=o.serving_model,
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
            overwrite=o.overwrite,
            num_shards=o.num_shards,
            skip_existing=tuple(run.rstrip("/") for run in o.skip_existing),
        )
