"""Beam's private APIs this project relies on, each wrapped once here, in a block of its own that
names the API; ``tests/test_beam_private.py`` fails when Beam changes one of them."""


# --- Beam's options parser -----------------------------------------------------------------
# Wraps apache_beam.options.pipeline_options._BeamArgumentParser, Beam's discovery of options
# classes as PipelineOptions.__subclasses__() and their _add_argparse_args(parser). Beam has
# no public way to build the parser its runners read flags with: get_all_options builds one and
# parses with it at once, logging unknown flags and exiting with usage text on a bad value,
# where the commands refuse with one line naming the closest flag (pipeline.options).


def beam_argument_parser_class() -> type:
    """Beam's ``argparse.ArgumentParser`` subclass, which some options classes need for their
    value-provider flags (``add_value_provider_argument``)."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    return _BeamArgumentParser


def beam_options_classes() -> list[type]:
    """The options classes whose flags Beam's runners parse, found as ``get_all_options``
    finds them (the direct subclasses of ``PipelineOptions``), one per name: a class defined
    again in a pickled main session keeps one entry."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return list({str(c): c for c in PipelineOptions.__subclasses__()}.values())


def add_beam_options_flags(parser, options_class: type) -> None:
    """Adds ``options_class``'s flags to ``parser``, as Beam's own parsing does."""
    options_class._add_argparse_args(parser)
