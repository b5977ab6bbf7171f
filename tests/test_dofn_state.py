"""Per-DoFn state that Beam may retry: probe candidates per bundle, model loads counted once.

Beam may run a bundle again on the same DoFn instance after a failure, and the records of the
failed attempt are discarded: whatever a bundle decides must be set in start_bundle(), not in
setup(), or the retry makes other records than the first attempt. These tests drive the
rescoring DoFn through Beam's lifecycle by hand (setup, then two attempts at one bundle) on a
real tiny Keras model.
"""

from __future__ import annotations

import os
import shutil

import apache_beam as beam
import numpy as np
from helpers import IMAGE_SIZE

from transforms.core import probe_choice
from transforms.core.model_reading import load_image_model
from transforms.core.records import Scored
from transforms.score.model_sharing import ModelConfig, ModelLoadMetrics
from transforms.score.reconcile import CANDIDATES, RescoreDoFn

BATCH_SIZE = 4


def _sampled(model_path: str, count: int) -> list[Scored]:
    """Sampled elements scored in one batch, as the Score stage hands them to Reconcile."""
    tensors = np.random.default_rng(0).random((count, *IMAGE_SIZE, 3), dtype=np.float32)
    scores = load_image_model(model_path).score(tensors)
    return [
        Scored(f"img_{i}.png", scores[i], count, "b0", i, tensor=tensors[i], sampled=True)
        for i in range(count)
    ]


def _attempt(dofn: RescoreDoFn, elements: list[Scored]) -> list:
    """One attempt at a bundle: what it outputs, main and tagged."""
    dofn.start_bundle()
    outputs = [out for element in elements for out in dofn.process(element)]
    return outputs + list(dofn.finish_bundle())


def _candidates(outputs: list) -> list[tuple[str, str]]:
    return [
        (out.value.kind, out.value.key)
        for out in outputs
        if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == CANDIDATES
    ]


def test_a_retried_bundle_offers_the_same_probe_candidates(model_path):
    path = model_path("clean")
    elements = _sampled(path, BATCH_SIZE)
    dofn = RescoreDoFn(ModelConfig(path), BATCH_SIZE, False, False, 1e-5, 1e-4)
    dofn.setup()
    first, retry = _attempt(dofn, elements), _attempt(dofn, elements)
    assert _candidates(first) == _candidates(retry)
    # A clean model: candidates for the repeat probe and the clean profile, each offered
    # only while it comes first (in key order) of those the bundle saw so far.
    for kind in (probe_choice.FIRST, probe_choice.CLEAN):
        offered = [key for k, key in _candidates(first) if k == kind]
        orders = [probe_choice.probe_order(key) for key in offered]
        assert offered and orders == sorted(orders, reverse=True)
        assert offered[-1] == min((e.key for e in elements), key=probe_choice.probe_order)
    assert [type(out) for out in first] == [type(out) for out in retry]


def test_each_loaded_model_is_counted_by_one_holder(model_path, tmp_path):
    # A private copy: the process-wide cache is keyed by path, and other tests may hold it.
    path = str(tmp_path / os.path.basename(model_path("clean")))
    shutil.copy(model_path("clean"), path)
    config = ModelConfig(path)
    holders = [ModelLoadMetrics() for _ in range(3)]
    models = [config.load(metrics) for metrics in holders]
    assert models[0] is models[1] is models[2]
    assert [metrics._cached_loads for metrics in holders] == [1, 0, 0]
