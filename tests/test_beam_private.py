"""Each private Beam API wrapped by ``transforms.io.beam_private`` still does what the pipeline
relies on, checked against the real Beam on a real pipeline: a Beam upgrade that changes one
fails here."""

from __future__ import annotations

import uuid

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.multi_process_shared import MultiProcessShared

from transforms.io.beam_private import model_copy_tags

LOADED_BY_RUN_INFERENCE = "loaded by RunInference"


class _Copy:
    """Stands in for a model: says who loaded it."""

    def __init__(self, loaded_by: str):
        self._loaded_by = loaded_by

    def loaded_by(self) -> str:
        return self._loaded_by


class _CopiesHandler(ModelHandler):
    def __init__(self, copies: int):
        super().__init__(model_copies=copies)

    def load_model(self) -> _Copy:
        return _Copy(LOADED_BY_RUN_INFERENCE)

    def run_inference(self, batch, model, inference_args=None):
        return [model.loaded_by() for _ in batch]


class _FindCopiesDoFn(beam.DoFn):
    """Acquires every copy under ``model_copy_tags``; a tag Beam did not use loads a new one."""

    def __init__(self, identifier: str, copies: int):
        self._identifier, self._copies = identifier, copies

    def process(self, loaded_by: str):
        # In process(), not setup(): RunInference has loaded its copies by the time it outputs.
        for tag in model_copy_tags(self._identifier, self._copies):
            found = MultiProcessShared(
                lambda: _Copy("loaded again: not RunInference's tag"), tag=tag, always_proxy=True
            ).acquire()
            yield loaded_by, found.loaded_by()


@pytest.mark.parametrize("copies", [1, 2])
def test_model_copy_tags_find_the_copies_run_inference_loaded(copies):
    identifier = f"beam-private-test-{uuid.uuid4().hex}"
    with TestPipeline() as p:
        found = (
            p
            | beam.Create([1, 2, 3])
            | RunInference(_CopiesHandler(copies), model_identifier=identifier)
            | beam.ParDo(_FindCopiesDoFn(identifier, copies))
        )
        expected = [(LOADED_BY_RUN_INFERENCE, LOADED_BY_RUN_INFERENCE)] * (3 * copies)
        assert_that(found, equal_to(expected))


def test_model_copy_tags_are_one_per_copy_in_order():
    tags = model_copy_tags("m", 3)
    assert len(tags) == len(set(tags)) == 3
    assert model_copy_tags("m", 1) == tags[:1]
