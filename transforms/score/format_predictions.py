"""FormatPredictions: scored elements -> prediction records of the output contract.

The Beam stage only; the record itself (top-k with labels, provenance, model digest, the
non-finite flag, optional scores) is ``records.prediction_record``, a pure function tested
without a pipeline.
"""

from __future__ import annotations

import apache_beam as beam

from transforms.core import records


# No output hint: ``dict`` would make Beam encode the records with MapCoder, not
# FastPrimitivesCoder as until now.
@beam.typehints.with_input_types(records.Scored)
class FormatPredictions(beam.PTransform):
    """Scored -> prediction records (top-k with the model's labels, provenance, digest).

    Args:
      labels: class names (None: indices), model_digest: the model's digest, both resolved
        when the job is built; top_k, write_scores: as the flags say.
    """

    def __init__(
        self,
        labels: tuple[str, ...] | None,
        model_digest: str,
        top_k: int,
        write_scores: bool,
    ):
        super().__init__()
        self._labels = list(labels) if labels else None
        self._digest = model_digest
        self._top_k = top_k
        self._write_scores = write_scores

    def expand(self, scored):
        return scored | "FormatPrediction" >> beam.Map(
            records.prediction_record,
            self._top_k,
            self._labels,
            self._digest,
            self._write_scores,
        )
