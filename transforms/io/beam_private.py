"""Beam's private APIs this project relies on, each wrapped once here, in a block of its own that
names the API; ``tests/test_beam_private.py`` fails when Beam changes one of them."""

from apache_beam.io import parquetio, textio, tfrecordio
from apache_beam.io.filesystems import FileSystems

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


# --- File sinks that never replace -------------------------------------------------------
# Wraps apache_beam.io's private sink classes (textio._TextSink, parquetio._ParquetSink,
# tfrecordio._TFRecordSink), the private ``_sink`` attribute of WriteToText / WriteToParquet /
# WriteToTFRecord and FileBasedSink's ``_get_final_name_glob``. Beam's ``pre_finalize`` deletes
# every file under the final shard names; in a user's folder those may not be this run's, and
# Beam has no public switch to refuse instead of delete.


class ShardNameTaken(OSError):
    """A file someone else put under one of this run's shard names, found when Beam finalizes."""


class _NeverReplaces:
    """Beam's file sink, except that files already under the final shard names are refused,
    not deleted. (The launcher refuses such a folder before the run; this catches a file that
    appears while it runs.)"""

    def pre_finalize(self, init_result, writer_results):
        pattern = self._get_final_name_glob(len(list(writer_results)))
        taken = [m.path for found in FileSystems.match([pattern]) for m in found.metadata_list]
        if taken:
            raise ShardNameTaken(
                f"{len(taken)} file(s) already under this run's shard names, e.g. {taken[0]}; "
                "not replaced: move them away and rerun"
            )


class _OwnedTextSink(_NeverReplaces, textio._TextSink):
    pass


class _OwnedParquetSink(_NeverReplaces, parquetio._ParquetSink):
    pass


class _OwnedTFRecordSink(_NeverReplaces, tfrecordio._TFRecordSink):
    pass


_OWNED = {
    textio._TextSink: _OwnedTextSink,
    parquetio._ParquetSink: _OwnedParquetSink,
    tfrecordio._TFRecordSink: _OwnedTFRecordSink,
}


def never_replacing(write):
    """``write`` (WriteToText, WriteToParquet or WriteToTFRecord) with its sink made one that
    refuses existing files under its shard names instead of deleting them (the subclass adds
    no state, so the sink built by Beam's own constructor is kept)."""
    write._sink.__class__ = _OWNED[type(write._sink)]
    return write
