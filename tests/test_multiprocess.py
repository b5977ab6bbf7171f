"""Multi-process DirectRunner: the in-process answers, one model load per worker process.

``--direct_running_mode multi_processing`` runs every stage in separate SDK worker processes,
so each DoFn, the model handler and the CombineFn are pickled and rebuilt in a process that
imported only the installed package (never tests/): the closest a laptop gets to Dataflow's
workers. The runs are slow (each worker imports TensorFlow), hence ``slow``.
"""

from __future__ import annotations

import os
import random
import shutil

import apache_beam as beam
import helpers
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import read_json, read_jsonl

from pipeline.run import run
from transforms.core.common import METRICS_NAMESPACE
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics

NUM_IMAGES = 40
WORKERS = 2
MULTI_PROCESS = [
    "--direct_running_mode",
    "multi_processing",
    "--direct_num_workers",
    str(WORKERS),
]
SCORE_TOLERANCE = 1e-6

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    helpers.write_images(directory, NUM_IMAGES)
    return directory


def _fresh_model(model_path, fault: str, directory) -> str:
    """A private copy: the process-wide model cache is keyed by path, and earlier tests in this
    process may have loaded the same file, which would hide an in-process load."""
    source = model_path(fault)
    target = os.path.join(directory, os.path.basename(source))
    shutil.copy(source, target)
    return target


def _run(output, corpus, model, *flags) -> dict:
    result = run(
        [
            "--input",
            f"{corpus}/*.png",
            "--model",
            model,
            "--output",
            str(output),
            "--batch_size",
            "8",
            "--reconcile_fraction",
            "0.5",
            "--sweep_batch_sizes",
            "1,4",
            "--write_scores",
            *flags,
        ],
        save_main_session=False,
    )
    loads = result.metrics().query(
        MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name("model_loads")
    )["counters"]
    return {
        "model_loads": sum(counter.committed or 0 for counter in loads),
        "predictions": {p["uri"]: p for p in read_jsonl(os.path.join(output, "predictions"))},
        "prediction_shards": sorted(os.listdir(os.path.join(output, "predictions"))),
        "elements": read_jsonl(os.path.join(output, "reconciliation", "elements")),
        "summary": read_json(os.path.join(output, "reconciliation", "summary.json")),
        "run": read_json(os.path.join(output, "run.json")),
    }


def _main_comparisons(elements: list[dict]) -> set[str]:
    return {e["uri"] for e in elements if not e.get("sweep")}


def test_multi_process_matches_in_process(tmp_path, corpus, model_path):
    model = _fresh_model(model_path, "clean", tmp_path)
    single = _run(tmp_path / "in_process", corpus, model)
    multi = _run(tmp_path / "multi_process", corpus, model, *MULTI_PROCESS)

    assert len(single["predictions"]) == len(multi["predictions"]) == NUM_IMAGES
    assert single["predictions"].keys() == multi["predictions"].keys()
    for uri, expected in single["predictions"].items():
        actual = multi["predictions"][uri]
        assert [k["index"] for k in actual["top_k"]] == [k["index"] for k in expected["top_k"]]
        for a, e in zip(actual["top_k"], expected["top_k"], strict=True):
            assert abs(a["score"] - e["score"]) <= SCORE_TOLERANCE, uri
        np.testing.assert_allclose(
            actual["scores"], expected["scores"], rtol=0, atol=SCORE_TOLERANCE, err_msg=uri
        )
        assert actual["model_digest"] == expected["model_digest"]
    # Sampling is a hash of the key, so both runs reconcile the same elements.
    assert _main_comparisons(multi["elements"]) == _main_comparisons(single["elements"])
    for key in ("verdict", "compared", "mismatch"):
        assert multi["summary"][key] == single["summary"][key], key
    assert single["summary"]["verdict"] == "pass"
    assert {d["cause"] for d in multi["summary"]["diagnosis"]} == {
        d["cause"] for d in single["summary"]["diagnosis"]
    }
    for record in (single["run"], multi["run"]):
        assert (record["matched"], record["scored"], record["errors"]) == (NUM_IMAGES,) * 2 + (0,)
        assert record["accounted"]

    # One load per process, shared by the two DoFns that hold the model (RunInference and
    # RescoreAlone; in process, the preflight's load): the runner sends the scoring stage's two
    # input partitions to its two workers in turn, so both load, once.
    assert single["model_loads"] == 1
    assert multi["model_loads"] == WORKERS

    # num_shards 0 lets the runner shard: one bundle, one file in process; one per worker here.
    assert single["prediction_shards"] == ["part-00000-of-00001.jsonl"]
    assert multi["prediction_shards"] == [
        f"part-{i:05d}-of-{WORKERS:05d}.jsonl" for i in range(WORKERS)
    ]


def test_multi_process_reaches_the_same_failing_verdict(tmp_path, corpus, model_path):
    """A model that normalises across the batch fails reconciliation in both modes, with the
    same diagnosis (its scores themselves depend on the batches, which differ by mode)."""
    model = _fresh_model(model_path, "batch_mean", tmp_path)
    single = _run(tmp_path / "in_process", corpus, model)
    multi = _run(tmp_path / "multi_process", corpus, model, *MULTI_PROCESS)

    for summary in (single["summary"], multi["summary"]):
        assert summary["verdict"] == "fail"
        assert "batch_dependent_layers" in {d["cause"] for d in summary["diagnosis"]}
    assert multi["summary"]["compared"] == single["summary"]["compared"]


def test_one_model_copy_serves_both_worker_processes(tmp_path, corpus, model_path):
    """--model_copies 1: Beam loads the model once for the two workers (the other reaches it
    through Beam's cross-process proxy), and the per-element reference uses that same copy."""
    model = _fresh_model(model_path, "clean", tmp_path)
    shared = _run(tmp_path / "shared", corpus, model, *MULTI_PROCESS, "--model_copies", "1")
    assert shared["model_loads"] == 1
    assert len(shared["predictions"]) == NUM_IMAGES
    assert shared["summary"]["verdict"] == "pass", shared["summary"]["diagnosis"]
    assert shared["summary"]["compared"] == len(_main_comparisons(shared["elements"])) > 0


def test_fixed_shard_count_is_honoured(tmp_path, corpus, model_path):
    """--num_shards N forces exactly N files (at the cost of a reshard) on any runner."""
    result = _run(tmp_path / "out", corpus, model_path("clean"), "--num_shards", "3")
    assert result["prediction_shards"] == [f"part-{i:05d}-of-00003.jsonl" for i in range(3)]
    assert len(result["predictions"]) == NUM_IMAGES
    elements = sorted(os.listdir(tmp_path / "out" / "reconciliation" / "elements"))
    assert len(elements) == 3


def _draws_after_model_load(output: str, config: ModelConfig, *flags: str) -> set[tuple]:
    """What Python, NumPy and TensorFlow draw in a process right after it loads the model
    (DoFn.setup, as the scoring and reconciling DoFns load it), one set entry per process."""
    import tensorflow as tf

    class DrawAfterLoad(beam.DoFn):
        def setup(self):
            self._model = config.load(ModelLoadMetrics())
            draws = (random.random(), np.random.random(), tf.random.uniform([]).numpy())
            self._draws = ",".join(repr(float(draw)) for draw in draws)

        def process(self, element):
            yield self._draws

    with beam.Pipeline(options=PipelineOptions(list(flags))) as pipeline:
        (
            pipeline
            | beam.Create(range(8))
            | beam.Reshuffle()
            | beam.ParDo(DrawAfterLoad())
            | beam.io.WriteToText(output)
        )
    lines = set()
    for name in os.listdir(os.path.dirname(output)):
        with open(os.path.join(os.path.dirname(output), name)) as f:
            lines.update(f.read().split())
    return lines


def test_deterministic_seeds_every_worker_where_it_loads_the_model(tmp_path, model_path):
    """--deterministic is per process (seeds and op determinism): each worker process makes
    itself deterministic where it loads the model, as the launcher does, so every worker draws
    what the in-process run draws. (A model's own random ops cannot show it: a SavedModel
    carries its op seeds, Keras's random layers are off at inference, and a stateful op's draws
    follow each process's batches.)"""
    model = _fresh_model(model_path, "clean", tmp_path)
    config = ModelConfig(model, deterministic=True)
    os.makedirs(tmp_path / "in_process")
    os.makedirs(tmp_path / "multi_process")
    in_process = _draws_after_model_load(str(tmp_path / "in_process" / "draws"), config)
    multi = _draws_after_model_load(
        str(tmp_path / "multi_process" / "draws"), config, *MULTI_PROCESS
    )
    assert len(in_process) == 1
    assert multi == in_process
