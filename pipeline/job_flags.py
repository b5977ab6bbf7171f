"""The command lines of the two Beam jobs: the scoring job (``RUN``) and the comparison
(``COMPARE``), their flags in the groups --help shows, and their closing text.

``ScoringOptions`` (``pipeline.options``) adds the same table to Beam's parser, and JobConfig's
fields carry the same names. No Beam, no TensorFlow (``pipeline.flags``).
"""

from __future__ import annotations

from pipeline.flags import (
    ATOL,
    LOG_LEVEL,
    MAX_FILE_BYTES,
    RTOL,
    WORKERS_SHARE_FILESYSTEM,
    Command,
    Flag,
    choices_text,
)
from transforms.core.common import INPUT_FORMATS, NORMALIZATIONS, OUTPUT_FORMATS

# --decode_reference: other decoders the sample can be scored through (docs/decoding.md).
DECODE_REFERENCES = ("pillow",)

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
                argparse={"metavar": choices_text(INPUT_FORMATS)},
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
                f"plain models only ({choices_text(NORMALIZATIONS)}); a bundle carries its own",
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
                argparse={"metavar": choices_text(OUTPUT_FORMATS)},
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

RUN = Command(
    "python -m pipeline.run",
    "Scores images with a model on Apache Beam and checks, on a sample, that each batched score "
    "equals the same image scored alone (also installed as batch-score).",
    JOB_FLAGS,
    RUN_EPILOG,
    usage="--input PATTERN --output DIR [--model PATH] [flags] [Beam's flags]",
)
COMPARE = Command(
    "python -m pipeline.compare",
    "Compares two runs' predictions key by key on Apache Beam: coverage, tolerance statuses, "
    "top-1 flips, drift, and what changed between the runs (also installed as batch-compare).",
    COMPARE_FLAGS,
    COMPARE_EPILOG,
    usage="--baseline RUN --candidate RUN --output DIR [flags] [Beam's flags]",
)
