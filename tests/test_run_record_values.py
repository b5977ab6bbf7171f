"""Exact values of the run record's parts known without a run: what the reconciliation report
names the run by, the incomplete run.json a running job leaves, and the model loads as a runner
reports them. Whole dicts pinned, so a wrong field name, value or comparison fails (written from
the mutants the fast tests left alive). No pipeline is run: a runner's result is Beam's own
``PipelineResult`` (which has no metrics) or one that answers a query with Beam's own filter.
"""

from __future__ import annotations

import calendar
import dataclasses
import os
import platform
import time
from importlib import metadata

import pytest
from apache_beam.metrics.execution import MetricKey, MetricResult
from apache_beam.metrics.metric import MetricResults
from apache_beam.metrics.metricbase import MetricName
from apache_beam.runners.runner import PipelineResult, PipelineState

from pipeline.environment import environment
from pipeline.options import parse_args
from pipeline.run_record import (
    PACKAGES,
    incomplete_record,
    report_run_info,
    run_record,
    runner_model_loads,
)
from transforms.core.metric_names import METRICS_NAMESPACE, MODEL_LOADS
from transforms.core.model_facts import ModelFacts
from transforms.core.preprocess import PreprocessSpec


def _config(**changes):
    _, config = parse_args(["--input", "x/*.png", "--model", "m.keras", "--output", "/tmp/out"])
    return dataclasses.replace(config, **changes)


FACTS = ModelFacts(
    PreprocessSpec((16, 24), "unit"),
    ("cat", "dog"),
    "sha256:abc",
    "saved_model",
    input_dtype="uint8",
    output_key="probabilities",
)


@pytest.fixture
def far_from_utc(monkeypatch):
    """A local time zone hours away from UTC: a record stamped in local time is found out."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # UTC+05:45
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _seconds_ago(stamp: str, form: str) -> float:
    return time.time() - calendar.timegm(time.strptime(stamp, form))


def test_report_run_info_exactly(far_from_utc):
    config = _config(
        batch_size=16,
        pad_batches=True,
        reconcile_fraction=0.25,
        reconcile_min=7,
        atol=0.5,
        rtol=0.125,
        sweep_batch_sizes=(4, 8),
        serving_model="serving/",
        decode_reference="pil",
    )
    info = report_run_info(config, FACTS)
    assert 0 <= _seconds_ago(info.pop("date"), "%Y-%m-%d %H:%M:%S UTC") < 120
    assert info == {
        "model": "m.keras",
        "model_digest": "sha256:abc",
        "model_kind": "saved_model",
        "model_output": "probabilities",
        "inputs": ["x/*.png"],
        "package_versions": {
            "tensorflow": metadata.version("tensorflow"),
            "keras": metadata.version("keras"),
            "apache-beam": metadata.version("apache-beam"),
            "tfx-bsl": metadata.version("tfx-bsl"),
            "numpy": metadata.version("numpy"),
            "pillow": metadata.version("pillow"),
        },
        "environment": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "options": {
            "batch_size": 16,
            "pad_batches": True,
            "reconcile_fraction": 0.25,
            "reconcile_min": 7,
            "atol": 0.5,
            "rtol": 0.125,
            "sweep_batch_sizes": [4, 8],
            "serving_model": "serving/",
            "decode_reference": "pil",
            "preprocessing": FACTS.spec.to_json(),
            "input_dtype": "uint8",
        },
        "labels": ["cat", "dog"],
    }
    assert PACKAGES == ("tensorflow", "keras", "apache-beam", "tfx-bsl", "numpy", "pillow")


def test_report_run_info_names_a_manifest_and_no_labels():
    manifest = report_run_info(_config(inputs=(), input_manifest="list.txt"), FACTS)
    assert manifest["inputs"] == ["list.txt"]
    for labels in (None, ()):
        info = report_run_info(_config(), dataclasses.replace(FACTS, labels=labels))
        assert info["labels"] is None


def test_incomplete_record_exactly(far_from_utc):
    config = _config(batch_size=8)
    record = incomplete_record(config, "sha256:def")
    assert 0 <= _seconds_ago(record.pop("started"), "%Y-%m-%dT%H:%M:%SZ") < 120
    assert record == {
        "job": "batch-score",
        "status": "incomplete",
        "options": dataclasses.asdict(config),
        "model": "m.keras",
        "model_digest": "sha256:def",
    }


class _Metrics(MetricResults):
    """A runner's metrics, answered with Beam's own filter (``MetricResults.matches``)."""

    def __init__(self, counters):
        self.counters = counters

    def query(self, filter=None):
        kept = [c for c in self.counters if self.matches(filter, c.key)]
        return {self.COUNTERS: kept, self.DISTRIBUTIONS: [], self.GAUGES: []}


class _Reported(PipelineResult):
    def __init__(self, counters):
        super().__init__(PipelineState.DONE)
        self._metrics = _Metrics(counters)

    def metrics(self):
        return self._metrics


def _counter(name, committed, attempted, namespace=METRICS_NAMESPACE, step="s"):
    return MetricResult(MetricKey(step, MetricName(namespace, name)), committed, attempted)


def test_runner_model_loads_exactly():
    assert runner_model_loads(PipelineResult(PipelineState.DONE)) is None  # no metrics at all
    assert runner_model_loads(_Reported([])) is None  # none of the job's metrics
    assert runner_model_loads(_Reported([_counter("other", 1, 1, namespace="x")])) is None
    assert runner_model_loads(_Reported([_counter("scored", 9, 9)])) == 0
    counters = [
        _counter(MODEL_LOADS, 2, 5, step="a"),
        _counter(MODEL_LOADS, None, 3, step="b"),  # committed unknown: attempted
        _counter(MODEL_LOADS, 0, 7, step="c"),  # committed 0 is a count, not unknown
        _counter("scored", 100, 100),
        _counter(MODEL_LOADS, 1000, 1000, namespace="another_job"),
    ]
    assert runner_model_loads(_Reported(counters)) == 5
    unknown = [*counters, _counter(MODEL_LOADS, None, None, step="d")]
    assert runner_model_loads(_Reported(unknown)) is None


def _counts(**overrides) -> dict:
    counts = {
        "matched": 10,
        "scored": 7,
        "errors": 2,
        "errors_by_reason": {"corrupt_image": 2},
        "skipped": 1,
        "non_finite_scores": 3,
        "reconciled": 4,
        "skip_existing_unreadable_lines": 5,
        "exif_oriented": 6,
        "run_id": "r",
    }
    return counts | overrides


def test_run_record_exactly():
    import tensorflow as tf

    options, config = parse_args(
        ["--input", "x/*.png", "--model", "m.keras", "--output", "/tmp/out", "--runner", "Prism"]
    )
    record = run_record(config, options, FACTS, _counts(), 2.0, ["predictions.jsonl"], 3, ["note"])
    assert record.pop("environment") == environment("Prism")
    assert record.pop("package_versions") == {name: metadata.version(name) for name in PACKAGES}
    assert record == {
        "job": "batch-score",
        "status": "complete",
        "outputs": ["predictions.jsonl"],
        "matched": 10,
        "scored": 7,
        "errors": 2,
        "errors_by_reason": {"corrupt_image": 2},
        "non_finite_scores": 3,
        "exif_oriented": 6,
        "reconciled": 4,
        "model_loads": 3,
        "skipped": 1,
        "skip_existing_notes": ["note"],
        "skip_existing_unreadable_lines": 5,
        "accounted": True,
        "options": dataclasses.asdict(config),
        "working_dir": os.getcwd(),
        "runner": "Prism",
        "model": "m.keras",
        "model_digest": "sha256:abc",
        "model_kind": "saved_model",
        "model_output": "probabilities",
        "preprocessing": dataclasses.asdict(FACTS.spec),
        "threads": {
            "cpu_count": os.cpu_count(),
            "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "wall_seconds": 2.0,
        "images_per_second": 3.5,
    }


def test_run_record_without_model_counts_or_time():
    options, config = parse_args(["--input", "x/*.png", "--model", "m.keras", "--output", "o"])
    bare = run_record(config, options, None, None, 0.0)
    assert {k: bare[k] for k in ("runner", "outputs", "skip_existing_notes", "model_loads")} == {
        "runner": "DirectRunner",
        "outputs": [],
        "skip_existing_notes": [],
        "model_loads": None,
    }
    for name in ("model_digest", "model_kind", "model_output", "preprocessing", "matched"):
        assert bare[name] is None, name
    assert (bare["accounted"], bare["images_per_second"]) == (False, None)
    timed = run_record(config, options, None, _counts(scored=0, skipped=8), 1.23456)
    assert (timed["wall_seconds"], timed["images_per_second"], timed["accounted"]) == (
        1.235,
        0.0,
        True,
    )
    assert run_record(config, options, None, _counts(), 3.0)["images_per_second"] == 2.333
    assert run_record(config, options, None, _counts(), 0.5)["images_per_second"] == 14.0
    assert run_record(config, options, None, _counts(), 0.0)["images_per_second"] is None
    assert run_record(config, options, None, _counts(), -1.0)["images_per_second"] is None
