"""The one home of Beam's private APIs the pipeline relies on, each in its own block.

Beam has no public way to do what each block does. Every block names the private API it wraps,
and ``tests/test_beam_private.py`` checks each against the real Beam, so an upgrade that
changes one fails a test here, not a job.
"""

from __future__ import annotations

# --- RunInference's model copy tags ------------------------------------------------------------
# Private API: apache_beam.ml.inference.base._get_tags_for_copies (Beam 2.77). With
# ``ModelHandler.model_copies`` set, RunInference's DoFn loads each copy into a
# ``multi_process_shared.MultiProcessShared`` under the tag this function gives copy i of its
# ``model_identifier``. Beam offers no public way to reach a copy it loaded, yet the per-element
# reference must score with that very copy, not load another.
from apache_beam.ml.inference.base import _get_tags_for_copies


def model_copy_tags(model_identifier: str, copies: int) -> list[str]:
    """The ``MultiProcessShared`` tags under which RunInference keeps the ``copies`` copies of
    the model it loads for ``model_identifier`` (copy 0 first)."""
    return list(_get_tags_for_copies(model_identifier, copies))


# --- end of RunInference's model copy tags ------------------------------------------------------
