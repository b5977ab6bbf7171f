"""The private Beam APIs wrapped in ``transforms/io/beam_private.py`` still exist and still behave
as the wrappers assume: a Beam upgrade that changes one fails here, not in a user's command line."""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.options.value_provider import StaticValueProvider

from transforms.io.beam_private import (
    add_beam_options_flags,
    beam_argument_parser_class,
    beam_options_classes,
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
