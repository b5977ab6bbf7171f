"""The private Beam APIs wrapped in ``transforms/io/beam_private.py`` still exist and still behave
as the wrappers assume: a Beam upgrade that changes one fails here, not in a user's command line."""

from __future__ import annotations

import argparse
import uuid

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.options.value_provider import StaticValueProvider
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.multi_process_shared import MultiProcessShared

from transforms.io.beam_private import (
    add_beam_options_flags,
    beam_argument_parser_class,
    beam_options_classes,
    model_copy_tags,
    never_replacing,
)


def _beam_parser() -> argparse.ArgumentParser:
    parser = beam_argument_parser_class()(allow_abbrev=False, add_help=False)
    for options_class in beam_options_classes():
        add_beam_options_flags(parser, options_class)
    return parser


def test_beams_parser_class_takes_value_provider_flags():
    parser = beam_argument_parser_class()(allow_abbrev=False, add_help=False)
    assert isinstance(parser, argparse.ArgumentParser)
    parser.add_value_provider_argument("--size", type=int, default=3)
    parsed = parser.parse_args(["--size", "5"])
    assert isinstance(parsed.size, StaticValueProvider)
    assert parsed.size.get() == 5


def test_the_options_classes_are_those_beam_itself_parses():
    # Beam's public get_all_options parses with every options class it knows: the wrapper must
    # find the same classes, so the same flags (an options class this process defined, such as
    # pipeline.options.ScoringOptions, is in both).
    ours = vars(_beam_parser().parse_known_args([])[0])
    assert set(ours) == set(PipelineOptions([]).get_all_options())
    assert StandardOptions in beam_options_classes()


def test_an_options_class_adds_its_flags_to_a_parser():
    parser = beam_argument_parser_class()(allow_abbrev=False, add_help=False)
    add_beam_options_flags(parser, StandardOptions)
    parsed, unknown = parser.parse_known_args(["--runner", "PrismRunner", "--no_such_flag"])
    assert parsed.runner == "PrismRunner"
    assert unknown == ["--no_such_flag"]


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


TEMPLATE = "-SSSSS-of-NNNNN"
ROW = pa.schema([("x", pa.int64())])


@pytest.mark.parametrize(
    "write, elements",
    [
        (lambda p: beam.io.WriteToText(p, shard_name_template=TEMPLATE, num_shards=2), ["a"]),
        (lambda p: beam.io.WriteToTFRecord(p, shard_name_template=TEMPLATE, num_shards=2), [b"a"]),
        (
            lambda p: beam.io.WriteToParquet(p, ROW, shard_name_template=TEMPLATE, num_shards=2),
            [{"x": 1}],
        ),
    ],
    ids=["text", "tfrecord", "parquet"],
)
def test_a_sink_that_never_replaces_refuses_a_file_under_its_shard_names(tmp_path, write, elements):
    # Beam names shards by how many writers wrote: one or two here; either name is taken.
    theirs = [tmp_path / "part-00000-of-00001", tmp_path / "part-00001-of-00002"]
    for path in theirs:
        path.write_text("a file this run did not write\n")
    with (
        pytest.raises(Exception, match="already under this run's shard names"),
        TestPipeline() as p,
    ):  # noqa: B017
        _ = p | beam.Create(elements) | never_replacing(write(str(tmp_path / "part")))
    assert [path.read_text() for path in theirs] == ["a file this run did not write\n"] * 2
