"""Isolation: one failing element never sinks its batch, and one run never leaks into the next.

- ``score_isolating_failures`` bisects a failing batch down to the elements that fail: tested
  on a plain Python callable, then end to end with a SavedModel whose graph asserts on its input.
- Reruns: ``--deterministic`` runs over the same inputs write the same prediction lines, and a
  rerun with ``--overwrite`` leaves nothing of the previous run behind.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from conftest import read_json, read_jsonl
from helpers import IMAGE_SIZE, NUM_CLASSES, write_images
from PIL import Image

from pipeline.run import run
from transforms.core import records
from transforms.core.metric_names import METRICS_NAMESPACE
from transforms.score.scoring import score_isolating_failures

# ---------------------------------------------------------------------------------------------
# score_isolating_failures on a Python callable


class _Scorer:
    """Scores rows as [row sum, -row sum]; raises if any row in the call is negative."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        if (batch < 0).any():
            raise ValueError(f"negative input in a batch of {len(batch)}")
        sums = batch.reshape(len(batch), -1).sum(axis=1)
        return np.stack([sums, -sums], axis=1)


def _batch(n: int, marked=()) -> np.ndarray:
    batch = np.arange(n, dtype=np.float32).reshape(n, 1) + 1.0
    batch[list(marked)] = -1.0
    return batch


def test_a_clean_batch_is_scored_in_one_call():
    scorer = _Scorer()
    outcomes = score_isolating_failures(scorer, _batch(8))
    assert scorer.calls == [8]
    assert [(start, size) for start, size, _ in outcomes] == [(0, 8)] * 8
    np.testing.assert_array_equal(np.stack([row for *_, row in outcomes])[:, 0], np.arange(1, 9))


def test_failing_elements_are_isolated_by_bisection():
    scorer = _Scorer()
    outcomes = score_isolating_failures(scorer, _batch(8, marked=(2, 5)))
    # [0:8] fails -> [0:4] fails -> [0:2] ok, [2:4] fails -> [2] fails, [3] ok;
    #                [4:8] fails -> [4:6] fails -> [4] ok, [5] fails; [6:8] ok.
    assert [(start, size) for start, size, _ in outcomes] == [
        (0, 2),
        (0, 2),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 1),
        (6, 2),
        (6, 2),
    ]
    assert scorer.calls == [8, 4, 2, 2, 1, 1, 4, 2, 1, 1, 2]
    failed = [i for i, (*_, outcome) in enumerate(outcomes) if isinstance(outcome, Exception)]
    assert failed == [2, 5]
    assert all("negative input in a batch of 1" in str(outcomes[i][2]) for i in failed)
    # Survivors keep their own scores, whatever sub-batch they ended up in.
    for i, (*_, outcome) in enumerate(outcomes):
        if i not in failed:
            np.testing.assert_array_equal(outcome, [i + 1.0, -(i + 1.0)])


def test_an_all_failing_batch_gives_one_error_per_element():
    outcomes = score_isolating_failures(_Scorer(), _batch(3, marked=(0, 1, 2)), offset=10)
    assert [(start, size) for start, size, _ in outcomes] == [(10, 1), (11, 1), (12, 1)]
    assert all(isinstance(outcome, ValueError) for *_, outcome in outcomes)


def _survivor_sizes(n: int, marked) -> list[int]:
    """Sizes of the calls that scored the survivors, as bisection makes them."""
    outcomes = score_isolating_failures(_Scorer(), _batch(n, marked))
    return sorted(size for _, size, out in outcomes if not isinstance(out, Exception))


# ---------------------------------------------------------------------------------------------
# A real model that raises on marked inputs, end to end

_THRESHOLD = 200.0  # ordinary test images stay below it; pure white (255) does not


def _save_guarded_model(path: str) -> str:
    """A TF2 SavedModel whose graph asserts every pixel of the batch is under _THRESHOLD.

    With ``--normalization none`` pixels reach it as 0..255, so one white image makes the
    whole call raise InvalidArgumentError, as a model's own input checks do in production.
    """
    import tensorflow as tf

    module = tf.Module()
    rng = np.random.default_rng(0)
    module.kernel = tf.Variable(rng.normal(size=(3, NUM_CLASSES)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, *IMAGE_SIZE, 3], tf.float32)])
    def serve(images):
        tf.debugging.assert_less(
            tf.reduce_max(images), _THRESHOLD, message="input pixel over the model's limit"
        )
        mean = tf.reduce_mean(images, axis=[1, 2]) / 255.0
        return {"scores": tf.nn.softmax(tf.matmul(mean, module.kernel))}

    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


def _write_png(path, pixels: np.ndarray) -> str:
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(path)
    return str(path)


@pytest.mark.slow
def test_marked_elements_fail_alone_and_the_rest_of_their_batch_is_scored(tmp_path):
    rng = np.random.default_rng(1)
    images = tmp_path / "images"
    images.mkdir()
    plain = [
        _write_png(images / f"plain_{i}.png", rng.integers(0, 150, (24, 20, 3))) for i in range(6)
    ]
    white = [_write_png(images / f"white_{i}.png", np.full((24, 20, 3), 255)) for i in range(2)]
    output = str(tmp_path / "out")
    result = run(
        [
            "--input",
            f"{images}/*.png",
            "--model",
            _save_guarded_model(str(tmp_path / "guarded")),
            "--normalization",
            "none",
            "--batch_size",
            "8",
            "--reconcile_fraction",
            "1",
            "--output",
            output,
        ],
        save_main_session=False,
    )

    errors = read_jsonl(os.path.join(output, "errors"))
    assert sorted(e["uri"] for e in errors) == sorted(white)
    for error in errors:
        assert (error["stage"], error["reason"]) == ("score", records.MODEL_ERROR)
        assert error["message"].startswith("model raised InvalidArgumentError")

    predictions = read_jsonl(os.path.join(output, "predictions"))
    assert sorted(p["uri"] for p in predictions) == sorted(plain)
    # Provenance describes the call that really scored each survivor: members, size, positions.
    calls = {}
    for p in predictions:
        calls.setdefault(p["batch_id"], []).append(p)
    for members in calls.values():
        members.sort(key=lambda p: p["position"])
        assert [m["position"] for m in members] == list(range(len(members)))
        assert {m["batch_size"] for m in members} == {len(members)}
        assert members[0]["batch_id"] == records.batch_id_for([m["uri"] for m in members])
    # All eight arrived in one batch of 8 (one bundle), which failed: the survivors were scored
    # in the sub-batches bisection gives for two failures among eight, never in a batch of 8.
    sizes = sorted(p["batch_size"] for p in predictions)
    possible = {tuple(_survivor_sizes(8, pair)) for pair in itertools.combinations(range(8), 2)}
    assert tuple(sizes) in possible, sizes

    record = read_json(os.path.join(output, "run.json"))
    assert (record["matched"], record["scored"], record["errors"]) == (8, 6, 2)
    assert record["errors_by_reason"] == {records.MODEL_ERROR: 2}
    assert record["accounted"] is True
    assert record["reconciled"] == 6
    reconciled = read_jsonl(os.path.join(output, "reconciliation", "elements"))
    assert {e["uri"] for e in reconciled} == set(plain)
    # Rescored alone, a survivor agrees with its score from the sub-batch it was scored in.
    assert all(e["status"] in ("identical", "within_tolerance") for e in reconciled), reconciled

    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))[
            "counters"
        ]
    }
    assert counters["model_errors"] == 2 and counters["scored"] == 6


# ---------------------------------------------------------------------------------------------
# Reruns


def _lines(directory) -> list[str]:
    found = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            found.extend(line for line in f.read().splitlines() if line)
    return sorted(found)


@pytest.fixture(scope="module")
def rerun_images(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rerun") / "images"
    write_images(directory, 10)
    return directory


def _flags(model: str, images, output: str, *extra: str) -> list[str]:
    return ["--input", f"{images}/*.png", "--model", model, "--output", output, *extra]


@pytest.mark.slow
def test_deterministic_reruns_write_identical_predictions(tmp_path, rerun_images, model_path):
    flags = ("--deterministic", "--write_scores", "--batch_size", "4", "--reconcile_fraction", "1")
    outputs = [str(tmp_path / name) for name in ("first", "second")]
    for output in outputs:
        run(_flags(model_path(), rerun_images, output, *flags), save_main_session=False)
    first, second = (_lines(os.path.join(o, "predictions")) for o in outputs)
    assert len(first) == 10
    assert first == second
    first, second = (_lines(os.path.join(o, "reconciliation", "elements")) for o in outputs)
    assert len(first) == 10 and first == second


@pytest.mark.slow
def test_overwrite_leaves_nothing_of_the_previous_run(tmp_path, rerun_images, model_path):
    output = str(tmp_path / "out")
    run(
        _flags(
            model_path(), rerun_images, output, "--num_shards", "3", "--reconcile_fraction", "1"
        ),
        save_main_session=False,
    )
    assert len(os.listdir(os.path.join(output, "predictions"))) == 3
    assert os.path.exists(os.path.join(output, "reconciliation", "summary.json"))
    notes = os.path.join(output, "NOTES.txt")  # not ours: an overwrite must not delete it
    with open(notes, "w") as f:
        f.write("kept\n")

    smaller = tmp_path / "smaller"
    smaller.mkdir()
    kept = sorted(rerun_images.iterdir())[:4]
    for path in kept:
        (smaller / path.name).write_bytes(path.read_bytes())
    run(
        _flags(
            model_path(),
            smaller,
            output,
            "--overwrite",
            "--num_shards",
            "1",
            "--reconcile_fraction",
            "0",
        ),
        save_main_session=False,
    )

    assert sorted(os.listdir(output)) == [
        "NOTES.txt",
        "counts.json",
        "errors",
        "predictions",
        "run.json",
    ]
    assert os.listdir(os.path.join(output, "predictions")) == ["part-00000-of-00001.jsonl"]
    assert os.listdir(os.path.join(output, "errors")) == ["part-00000-of-00001.jsonl"]
    predictions = read_jsonl(os.path.join(output, "predictions"))
    assert sorted(p["uri"] for p in predictions) == sorted(str(smaller / p.name) for p in kept)
    record = read_json(os.path.join(output, "run.json"))
    assert (record["matched"], record["scored"], record["accounted"]) == (4, 4, True)
