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


# --- RunInference's model copy tags -------------------------------------------------------
# Wraps apache_beam.ml.inference.base._get_tags_for_copies. With ``ModelHandler.model_copies``
# set, RunInference's DoFn loads each copy into a ``multi_process_shared.MultiProcessShared``
# under the tag this function gives copy i of its ``model_identifier``. Beam offers no public
# way to reach a copy it loaded, yet the per-element reference must score with that very copy,
# not load another.


def model_copy_tags(model_identifier: str, copies: int) -> list[str]:
    """The ``MultiProcessShared`` tags under which RunInference keeps the ``copies`` copies of
    the model it loads for ``model_identifier`` (copy 0 first)."""
    from apache_beam.ml.inference.base import _get_tags_for_copies

    return list(_get_tags_for_copies(model_identifier, copies))
