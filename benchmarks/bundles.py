"""What a model bundle costs against its ``.keras``: disk, scoring and export peak RSS.

    python -m benchmarks.bundles [--images 64] [--models MobileNetV2 ResNet50 wide]
        [--copies_images 64]

For each model (random weights, nothing downloaded): the ``.keras`` file is exported with
``python -m pipeline.export``, then the same ``--deterministic`` scoring job runs with the
``.keras`` and with the bundle, each a watched subprocess (``benchmarks.procwatch``: peak RSS of
the process tree). ``wide`` is a generated stack of wide Dense layers holding over 2 GiB of
float32 weights: more than protobuf's limit, so it exports only if the weights live outside
``saved_model.pb``. Then, with ``--copies_images`` > 0, a 2-process local run of the ResNet50
bundle (``--direct_num_workers 2 --direct_running_mode multi_processing``) with the default
(one model per SDK process) and with ``--model_copies 1``.

Targets (issue 22): bundle on disk <= 1.2x (the ``.keras`` + the preprocessing assets); scoring
peak RSS with the bundle <= 1.1x with the ``.keras``; export peak RSS <= 2x the bundle's scoring
job. Results go to stdout and ``WORK/bundles.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from benchmarks import corpus, jobs, procwatch
from benchmarks.run import ROOT, _env

WIDE_WIDTH = 18_000  # two 18,000 x 18,000 float32 kernels: 2.6 GB of weights
WIDE_SIZE = (32, 32)


def build_wide_model(path: str) -> None:
    """Saves a classifier whose weights exceed 2 GiB: pooled pixels -> wide Dense layers."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((*WIDE_SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    for _ in range(3):
        x = keras.layers.Dense(WIDE_WIDTH, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    keras.Model(inputs, outputs, name="wide").save(path + ".partial.keras")
    os.rename(path + ".partial.keras", path)


def save_wide_model(directory: str) -> str:
    """The wide model's ``.keras`` (cached), built in a child process so that its weights do
    not stay in this one's memory while the jobs run."""
    path = os.path.join(directory, "wide.keras")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        code = f"from benchmarks.bundles import build_wide_model; build_wide_model({path!r})"
        subprocess.run([sys.executable, "-c", code], env=_env(), cwd=ROOT, check=True)
    return path


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def _mib(size: int) -> float:
    return size / 2**20


def _top_k(out: str) -> dict:
    found = {}
    directory = os.path.join(out, "predictions")
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            for line in f:
                record = json.loads(line)
                found[record["key"]] = record["top_k"]
    return found


def export(work: str, name: str, model: str) -> tuple[str, procwatch.Outcome]:
    bundle = os.path.join(work, "bundles", name)
    shutil.rmtree(bundle, ignore_errors=True)
    command = [sys.executable, "-m", "pipeline.export", "--model", model, "--output", bundle]
    log = os.path.join(work, "logs", f"export_{name}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    outcome = procwatch.run(command, env=_env(), log_path=log, cwd=ROOT)
    if outcome.returncode != 0:
        raise SystemExit(f"export of {name} failed; see {log}:\n{outcome.tail}")
    return bundle, outcome


def measure(work: str, name: str, model: str, images: str) -> dict:
    bundle, exported = export(work, name, model)
    flags = ("--input", images, "--deterministic")
    _, with_keras = jobs.score(work, f"{name}_keras", model, *flags)
    _, with_bundle = jobs.score(work, f"{name}_bundle", bundle, *flags)
    keras_out = os.path.join(work, "out", f"{name}_keras")
    bundle_out = os.path.join(work, "out", f"{name}_bundle")
    assets = _size(os.path.join(bundle, "assets"))
    row = {
        "model": name,
        "keras_mib": _mib(_size(model)),
        "bundle_mib": _mib(_size(bundle)),
        "saved_model_pb_mib": _mib(_size(os.path.join(bundle, "saved_model.pb"))),
        "assets_kib": assets / 1024,
        "score_keras_rss_mib": with_keras.peak_rss_mib,
        "score_bundle_rss_mib": with_bundle.peak_rss_mib,
        "export_rss_mib": exported.peak_rss_mib,
        "export_seconds": exported.wall_seconds,
        "same_predictions": _top_k(keras_out) == _top_k(bundle_out),
    }
    row["disk_ratio"] = _size(bundle) / (_size(model) + assets)
    row["score_ratio"] = with_bundle.peak_rss_mib / with_keras.peak_rss_mib
    row["export_ratio"] = exported.peak_rss_mib / with_bundle.peak_rss_mib
    row["targets_met"] = (
        row["disk_ratio"] <= 1.2 and row["score_ratio"] <= 1.1 and row["export_ratio"] <= 2.0
    )
    return row


def copies(work: str, bundle: str, images: str) -> dict:
    """Peak RSS of a 2-process local run, one model per process vs ``--model_copies 1``."""
    flags = ("--input", images, "--direct_num_workers", "2",
             "--direct_running_mode", "multi_processing")  # fmt: skip
    default, per_process = jobs.score(work, "copies_default", bundle, *flags)
    one, shared = jobs.score(work, "copies_1", bundle, *flags, "--model_copies", "1")
    return {
        "default_rss_mib": per_process.peak_rss_mib,
        "model_copies_1_rss_mib": shared.peak_rss_mib,
        "default_model_loads": default["model_loads"],
        "model_copies_1_model_loads": one["model_loads"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=os.path.join("out", "bench_bundles"))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--copies_images", type=int, default=64)
    parser.add_argument(
        "--models", nargs="+", default=["MobileNetV2", "ResNet50", "wide"],
        choices=["MobileNetV2", "ResNet50", "wide"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    unique = corpus.write_corpus(os.path.join(args.work, "corpus"), args.images)
    images = corpus.linked_set(os.path.join(args.work, "corpus"), "set", unique, args.images)
    models_dir = os.path.join(args.work, "models")
    applications = tuple(m for m in args.models if m != "wide")
    paths = corpus.save_models(models_dir, applications) if applications else {}
    if "wide" in args.models:
        paths["wide"] = save_wide_model(models_dir)
    rows = [measure(args.work, name, paths[name], images) for name in args.models]
    result = {"images": args.images, "models": rows}
    if args.copies_images:
        resnet = os.path.join(args.work, "bundles", "ResNet50")
        if not os.path.exists(resnet):
            resnet, _ = export(args.work, "ResNet50", corpus.save_models(models_dir)["ResNet50"])
        result["copies"] = copies(args.work, resnet, images)
    with open(os.path.join(args.work, "bundles.json"), "w") as f:
        json.dump(result, f, indent=2)
    print("| model | .keras MiB | bundle MiB (x) | saved_model.pb MiB | score RSS .keras -> "
          "bundle MiB (x) | export RSS MiB (x score) | same predictions | targets |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['keras_mib']:,.1f} | {r['bundle_mib']:,.1f} "
            f"({r['disk_ratio']:.2f}x) | {r['saved_model_pb_mib']:.2f} | "
            f"{r['score_keras_rss_mib']:,.0f} -> {r['score_bundle_rss_mib']:,.0f} "
            f"({r['score_ratio']:.2f}x) | {r['export_rss_mib']:,.0f} ({r['export_ratio']:.2f}x) "
            f"| {r['same_predictions']} | {'met' if r['targets_met'] else 'MISSED'} |"
        )
    if "copies" in result:
        print(json.dumps(result["copies"]))


if __name__ == "__main__":
    main()
